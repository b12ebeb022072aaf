//! How many vendor ids a TC string makes the decoder list, counted before it decodes.
//!
//! iab_gpp 0.1.2 lists every id of every vendor range of a TC string and then sorts them: a
//! 1 KiB string of overlapping ranges over all 65,535 vendor ids took 1.1 s and 35 MB to
//! decode (x86_64, `opt-level = "z"`; `docs/benchmarks.md`), time a caller could make
//! uid2d's only serving thread spend on every call. This walk reads only the lengths the
//! decoder will read, in the order and layout iab_gpp reads them (the bits by
//! `bitstream-io`, the decoder's own bit reader), adds up the range spans, and refuses a string
//! whose ranges list more ids than [`MAX_LISTED_IDS`] before the decoder sees it. It is no
//! second decoder: whatever it does not refuse, iab_gpp decodes or refuses.

use bitstream_io::{BigEndian, BitRead, BitReader, BitWrite, BitWriter};

/// The most vendor ids the ranges of one TC string may list, over its vendor consents,
/// vendor legitimate interests, publisher restrictions and disclosed and allowed vendors:
/// every 16-bit vendor id once. Today's Global Vendor List has ids under 1,500, and an
/// encoder uses a range only where it is shorter than a bitfield, so a real string lists a
/// few thousand at most. Decoding 2^20 listed ids took 0.1 s on x86_64; 2^16 takes about 6 ms.
pub(crate) const MAX_LISTED_IDS: u32 = 1 << 16;

/// The core segment's fields before the vendor consents (TCF v2 "core string": version 6,
/// created 36, last updated 36, CMP id 12, CMP version 12, consent screen 6, language 12,
/// vendor list version 12, policy version 6, two flags, special features 12, purposes 24 + 24,
/// purpose one treatment 1, publisher country 12).
const CORE_HEADER_BITS: u32 = 213;

/// Whether the decoder would list at most [`MAX_LISTED_IDS`] ids for `tc_string`. A string
/// that ends early or is not base64url is counted up to where the decoder stops too (it reads
/// lazily, so a bad character after the ranges does not spare it their work).
pub(crate) fn within_bounds(tc_string: &str) -> bool {
    let mut listed = 0u32;
    for (index, segment) in tc_string.split('.').enumerate() {
        let bytes = bits(segment);
        let mut r = BitReader::endian(bytes.as_slice(), BigEndian);
        let counted = if index == 0 {
            core_ranges(&mut r)
        } else {
            segment_ranges(&mut r)
        };
        // A short read: the decoder stops there too.
        listed = listed.saturating_add(counted.unwrap_or_else(|partial| partial));
        if listed > MAX_LISTED_IDS {
            return false;
        }
    }
    true
}

/// The bits of a base64url segment up to its first byte outside the alphabet, where the
/// decoder's reader stops (iab_gpp `core/base64.rs`: `A–Z a–z 0–9 - _`, no padding).
fn bits(segment: &str) -> Vec<u8> {
    let mut w = BitWriter::endian(Vec::with_capacity(segment.len() * 3 / 4 + 1), BigEndian);
    for byte in segment.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => break,
        };
        // Writing into a Vec cannot fail.
        let _ = w.write_unsigned_var(6, sextet);
    }
    let _ = w.byte_align();
    w.into_writer()
}

/// The ids listed by ranges so far; `Err` carries the count up to a short read.
type Count = Result<u32, u32>;

/// Vendor consents and legitimate interests, then the publisher restrictions (read as
/// iab_gpp reads them: count 12, then purpose 6, type 2 and a vendor list each).
fn core_ranges<R: BitRead>(r: &mut R) -> Count {
    r.skip(CORE_HEADER_BITS).map_err(|_| 0u32)?;
    let mut listed = vendor_list(r, 0)?;
    listed = vendor_list(r, listed)?;
    let restrictions = r.read_unsigned::<12, u16>().map_err(|_| listed)?;
    for _ in 0..restrictions {
        r.skip(8).map_err(|_| listed)?;
        listed = vendor_list(r, listed)?;
        if listed > MAX_LISTED_IDS {
            break;
        }
    }
    Ok(listed)
}

/// An optional segment: type 3 bits; disclosed (1) and allowed (2) vendors hold a vendor
/// list, the publisher TC (3) only fixed fields.
fn segment_ranges<R: BitRead>(r: &mut R) -> Count {
    match r.read_unsigned::<3, u8>().map_err(|_| 0u32)? {
        1 | 2 => vendor_list(r, 0),
        _ => Ok(0),
    }
}

/// A vendor list ("optimized integer range"): max id 16, range flag 1; a bitfield lists
/// nothing beyond its own bits; a range section lists its spans (count 12, then per entry a
/// group flag, a start id 16 and for a group an end id 16).
fn vendor_list<R: BitRead>(r: &mut R, mut listed: u32) -> Count {
    let max_id = r.read_unsigned::<16, u16>().map_err(|_| listed)?;
    if !r.read_bit().map_err(|_| listed)? {
        r.skip(u32::from(max_id)).map_err(|_| listed)?;
        return Ok(listed);
    }
    let entries = r.read_unsigned::<12, u16>().map_err(|_| listed)?;
    for _ in 0..entries {
        let group = r.read_bit().map_err(|_| listed)?;
        let start = r.read_unsigned::<16, u16>().map_err(|_| listed)?;
        let span = if group {
            let end = r.read_unsigned::<16, u16>().map_err(|_| listed)?;
            u32::from(end.saturating_sub(start)) + 1
        } else {
            1
        };
        listed = listed.saturating_add(span);
        if listed > MAX_LISTED_IDS {
            return Ok(listed);
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::decode::{self, Undecodable};

    /// base64url of `bits` (zero-padded to a multiple of 6).
    fn text(mut bits: Vec<bool>) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        while !bits.len().is_multiple_of(6) {
            bits.push(false);
        }
        bits.chunks(6)
            .map(|six| ALPHABET[six.iter().fold(0, |v, &b| v << 1 | usize::from(b))] as char)
            .collect()
    }

    fn push(bits: &mut Vec<bool>, value: u32, width: u32) {
        bits.extend(
            (0..width)
                .rev()
                .map(|i| value.checked_shr(i).unwrap_or(0) & 1 == 1),
        );
    }

    /// A well-formed TC string whose vendor consents are `groups` ranges over ids 1–65535, as
    /// a hostile caller would write it.
    fn overlapping_ranges(groups: u32) -> String {
        let mut bits = Vec::new();
        push(&mut bits, 2, 6); // version 2
        push(&mut bits, 0, CORE_HEADER_BITS - 6);
        push(&mut bits, 0xffff, 16); // max vendor id
        push(&mut bits, 1, 1); // range encoding
        push(&mut bits, groups, 12);
        for _ in 0..groups {
            push(&mut bits, 1, 1);
            push(&mut bits, 1, 16);
            push(&mut bits, 0xffff, 16);
        }
        push(&mut bits, 0, 17); // legitimate interests: an empty bitfield
        push(&mut bits, 0, 12); // no publisher restrictions
        text(bits)
    }

    #[test]
    fn overlapping_vendor_ranges_are_refused_before_decoding() {
        // One range over every vendor id is a string a CMP could write: it decodes.
        assert!(within_bounds(&overlapping_ranges(1)));
        assert!(decode::tc_string(&overlapping_ranges(1)).is_ok());
        // Two are more ids than there are vendors: refused, and so is the same behind a
        // character the decoder would only meet after the ranges, or as GPP section 2.
        let hostile = overlapping_ranges(2);
        assert!(!within_bounds(&hostile));
        assert_eq!(
            decode::tc_string(&hostile),
            Err(Undecodable::TcStringRanges)
        );
        assert!(!within_bounds(&format!("{hostile}!")));
        assert!(!within_bounds(&format!("{hostile}.IAAA")));
        // 4 KiB of ranges: refused at once (decoding it took 5.7 s and 143 MB, x86_64).
        let big = overlapping_ranges(735);
        assert!(
            big.len() <= crate::privacy::signals::MAX_TC_STRING,
            "{}",
            big.len()
        );
        assert_eq!(decode::tc_string(&big), Err(Undecodable::TcStringRanges));
        let gpp = format!("DBABMA~{big}");
        assert_eq!(decode::gpp_string(&gpp), Err(Undecodable::TcStringRanges));
    }

    #[test]
    fn the_iab_encoders_strings_are_within_bounds() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/privacy/consent-strings.json");
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
        let mut seen = 0;
        for case in fixture["cases"].as_array().expect("cases") {
            if let Some(tc) = case["signals"]["IABTCF_TCString"].as_str() {
                assert!(within_bounds(tc), "{}", case["name"]);
                seen += 1;
            }
        }
        assert!(seen > 10, "{seen}");
    }
}
