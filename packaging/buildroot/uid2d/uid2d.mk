################################################################################
#
# uid2d
#
################################################################################

# PLACEHOLDERS: the repository you build from and the commit (or tag) to build.
# At download time Buildroot runs `cargo vendor --locked` on the checkout and
# keeps the crates in the source tarball, so the build is offline and Cargo.lock
# decides every version. After the first `make uid2d-source`, record the
# tarball's checksum in uid2d.hash (see packaging/README.md).
UID2D_VERSION = 0000000000000000000000000000000000000000
UID2D_SITE = https://git.example.com/uid2d.git
UID2D_SITE_METHOD = git

# The binaries also contain the vendored crates (MIT, Apache-2.0, ISC,
# BSD-3-Clause, Unicode-3.0, ...); the cargo infrastructure says so in
# legal-info. The repository has no LICENSE file yet: once it has one, add
# UID2D_LICENSE_FILES = LICENSE (and its hash to uid2d.hash).
UID2D_LICENSE = Apache-2.0

# Build: the cargo-package default, i.e. `cargo build --offline --locked
# --release` (no --release with BR2_ENABLE_DEBUG) for RUSTC_TARGET_NAME, in the
# plain release profile (never the repository's `dist` profile: Buildroot
# strips the target itself and sets opt-level/LTO from its own options).
# cargo puts the binaries in target/<triple>/<profile>/.
UID2D_BIN_DIR = target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)

# Install: the repository's `make install`, so the target gets exactly the
# files and modes of every other install (scripts/check-unit.sh checks that
# list): uid2d in /usr/bin with its role links uid2ctl and uid2-gateway, the
# units (uid2-gateway.service installed, not enabled), the sysusers.d entries,
# the D-Bus policies, activation file and interface XML, the vendor config
# /usr/lib/uid2d/uid2d.toml (every key commented out; nothing in /etc), and the
# Ripple pack in /usr/share/uid2d/rdk/ripple (templates, nothing active).
# TARGET_DIR= on the command line is the Makefile's "where the binaries are";
# it must be given, because Buildroot exports its own TARGET_DIR (the rootfs)
# and the Makefile would otherwise take that. `make install` never builds.
# OEM defaults and device config go in a rootfs overlay, which is copied after
# packages: /usr/lib/uid2d/uid2d.toml (replaces the commented one) and/or
# /etc/uid2d/uid2d.toml.d/<NN>-<name>.toml (see docs/configuration.md).
define UID2D_INSTALL_TARGET_CMDS
	$(TARGET_MAKE_ENV) $(MAKE) -C $(@D) install \
		DESTDIR=$(TARGET_DIR) \
		TARGET_DIR=$(@D)/$(UID2D_BIN_DIR) \
		prefix=/usr \
		sysconfdir=/etc
endef

# No UID2D_INSTALL_INIT_SYSTEMD: `make install` above already puts the unit in
# /usr/lib/systemd/system (the package depends on systemd, so it always wants
# it), and the systemd package's `systemctl preset-all` at the end of the build
# enables it: multi-user.target.wants/uid2d.service and the
# dbus-com.uid2.Manager.service alias that D-Bus activation asks for.

# The static system user named by the unit's User= and the bus policy, in the
# image's /etc/passwd (locked, no home, shell /bin/false). The sysusers.d
# entry stays installed; systemd-sysusers then finds the user in place.
define UID2D_USERS
	uid2d -1 uid2d -1 * - - - UID2 identity daemon
	- - uid2-broker -1 * - - - UID2 broker group
	- - uid2-runtime -1 * - - - UID2 gateway session group
	uid2-gateway -1 uid2-gateway -1 * - - uid2-broker UID2 gateway for HTML5 apps
endef

$(eval $(cargo-package))
