//! `uid2ctl dii`: the real binary prints what client-side generation would send for an
//! email or phone, with no daemon and no bus (a bus address nobody serves proves it),
//! and refuses a bad value with exit status 2 and a message that does not repeat it.
//!
//! Vectors: the UID2 documentation's "Normalization and Encoding" page
//! (IABTechLab/uid2docs docs/getting-started/gs-normalization-encoding.md, commit
//! 040205a9deca1258d4efad1be82b5f7542dd526b), every example of its tables, verbatim.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use uid2d_testkit::*;

/// (raw email, normalised, SHA-256 hex, Base64), as the page prints them.
const EMAILS: [(&str, &str, &str, &str); 14] = [
    (
        "user@example.com",
        "user@example.com",
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
    ),
    (
        "JANESaoirse@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "MyEmail@example.com",
        "myemail@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        "MYEMAIL@example.com",
        "myemail@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        "My.Email@example.com",
        "my.email@example.com",
        "e22b53bc6f871274f3a62ab37a3caed7214fc14d676215a96a242fcfada1c81f",
        "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8=",
    ),
    (
        "JANESAOIRSE@example.com",
        "janesaoirse@example.com",
        "d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d",
        "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20=",
    ),
    (
        "JaneSaoirse@example.com",
        "janesaoirse@example.com",
        "d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d",
        "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20=",
    ),
    (
        "jane.saoirse@example.com",
        "jane.saoirse@example.com",
        "b196432c7b989a2ca91c83799957c515da53e6c13abf20b78fea94f117e90bf8",
        "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g=",
    ),
    (
        "Jane.Saoirse@example.com",
        "jane.saoirse@example.com",
        "b196432c7b989a2ca91c83799957c515da53e6c13abf20b78fea94f117e90bf8",
        "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g=",
    ),
    (
        "JaneSaoirse+Work@example.com",
        "janesaoirse+work@example.com",
        "28aaee4815230cd3b4ebd88c515226550666e91ac019929e3adac3f66c288180",
        "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA=",
    ),
    (
        "JANE.SAOIRSE@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "Jane.Saoirse@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "JaneSaoirse+Work@gmail.com",
        "janesaoirse@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    // The page's first steps: leading and trailing spaces removed.
    (
        "  user@example.com ",
        "user@example.com",
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
    ),
];

/// A bus address nobody serves: `dii` must not need one.
const NO_BUS: &str = "unix:path=/nonexistent/uid2d-test-bus";

async fn dii(flag: &str, value: &str) -> std::process::Output {
    binaries!()
        .uid2ctl_command()
        .args(["--bus", NO_BUS, "dii", flag, value])
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_docs_examples_give_the_docs_values() {
    for (raw, normalized, hex, base64) in EMAILS {
        let out = dii("--email", raw).await;
        assert!(out.status.success(), "{raw}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("normalized={normalized}\nsha256_hex={hex}\nemail_hash={base64}\n"),
            "{raw}"
        );
    }
    // The page's phone example (phones are given in E.164; UID2 does not rewrite them).
    let out = dii("--phone", "+12345678901").await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "normalized=+12345678901\n\
         sha256_hex=10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee\n\
         phone_hash=EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4=\n"
    );
}

#[tokio::test]
async fn a_bad_value_exits_2_with_a_named_error_that_does_not_repeat_it() {
    // The page's un-normalised US number, and values that are no email.
    let cases = [
        (
            "--phone",
            "1 (234) 567-8901",
            "phone number is not normalised to E.164",
        ),
        (
            "--phone",
            "+1234",
            "phone number is not normalised to E.164",
        ),
        (
            "--email",
            "jane.saoirse.example.com",
            "invalid email address",
        ),
        (
            "--email",
            "jane@saoirse@example.com",
            "invalid email address",
        ),
    ];
    for (flag, value, message) in cases {
        let out = dii(flag, value).await;
        assert_eq!(out.status.code(), Some(2), "{value}: {out:?}");
        assert!(out.stdout.is_empty(), "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!("uid2ctl: dii: {message}")),
            "{stderr}"
        );
        assert!(!stderr.contains(value), "the value is repeated: {stderr}");
    }
    // Exactly one of the two: clap's usage error, also exit 2.
    let out = binaries!()
        .uid2ctl_command()
        .args(["dii", "--email", "a@b.c", "--phone", "+12345678901"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
