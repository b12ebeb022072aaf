# SPDX-License-Identifier: Apache-2.0
#
# Build and install uid2d with its OS integration files.
#
#   make build                          cargo build --locked (release profile)
#   make install DESTDIR=/tmp/root      install into a staging root (firmware image, package)
#   make install prefix=/usr/local      paths follow the GNU variables below
#   make test                           the whole test suite (scripts/test.sh)
#   make check-unit                     unit/policy/install checks (scripts/check-unit.sh)
#
# Cross builds: make build CARGO_TARGET=aarch64-unknown-linux-gnu, then
# make install CARGO_TARGET=aarch64-unknown-linux-gnu DESTDIR=... (binaries
# are taken from target/<triple>/<profile>/). PROFILE=dist selects the
# size-optimised profile. TARGET_DIR=dir takes the binaries from any directory.
# `install` never builds: run `make build` (or cargo) first.

CARGO ?= cargo
PROFILE ?= release
CARGO_TARGET ?=
CARGO_TARGET_DIR ?= target
# cargo puts the "dev" profile in debug/, every other profile in <profile>/.
profiledir = $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
TARGET_DIR ?= $(CARGO_TARGET_DIR)/$(if $(CARGO_TARGET),$(CARGO_TARGET)/)$(profiledir)

DESTDIR ?=
prefix ?= /usr
exec_prefix ?= $(prefix)
bindir ?= $(exec_prefix)/bin
sysconfdir ?= /etc
# The vendor defaults. uid2d reads /usr/lib/uid2d/uid2d.toml (fixed in the binary):
# with another prefix the installed copy is documentation only.
vendorconfdir ?= $(prefix)/lib/uid2d
datadir ?= $(prefix)/share
unitdir ?= $(prefix)/lib/systemd/system
sysusersdir ?= $(prefix)/lib/sysusers.d
dbuspolicydir ?= $(datadir)/dbus-1/system.d
dbusservicedir ?= $(datadir)/dbus-1/system-services
dbusinterfacedir ?= $(datadir)/dbus-1/interfaces
# The Ripple (RDK Firebolt) pack: rules, OpenRPC and unit drop-ins for the OEM to put in
# place (docs/firebolt.md).
ripplepackdir ?= $(datadir)/uid2d/rdk/ripple
RIPPLE_PACK = uid2.rules.json.in uid2.extn-sdk.json uid2.openrpc.json \
	uid2-gateway.service.d/ripple.conf ripple.service.d/uid2-gateway.conf

INSTALL ?= install

# One executable for every role; each other role is a link to it, named after the role
# (src/roles.rs).
BINARIES = uid2d
ROLE_LINKS = uid2ctl uid2-gateway

# uid2d reads /etc/uid2d/uid2d.toml (and its uid2d.toml.d/) unless told otherwise.
execstart = $(bindir)/uid2d$(if $(filter-out /etc,$(sysconfdir)), --config $(sysconfdir)/uid2d/uid2d.toml)

.PHONY: all build install uninstall test check-unit clean

all: build

build:
	$(CARGO) build --locked --profile $(PROFILE) $(if $(CARGO_TARGET),--target $(CARGO_TARGET)) --bins

install:
	@for b in $(BINARIES); do \
		if [ ! -x "$(TARGET_DIR)/$$b" ]; then \
			echo "$(TARGET_DIR)/$$b is missing: run 'make build' (with the same PROFILE/CARGO_TARGET) first" >&2; \
			exit 1; \
		fi; \
	done
	$(INSTALL) -D -m 0755 $(TARGET_DIR)/uid2d $(DESTDIR)$(bindir)/uid2d
	for l in $(ROLE_LINKS); do ln -sfn uid2d $(DESTDIR)$(bindir)/$$l || exit 1; done
	$(INSTALL) -d -m 0755 $(DESTDIR)$(unitdir)
	sed 's|^ExecStart=/usr/bin/uid2d$$|ExecStart=$(execstart)|' systemd/uid2d.service > $(DESTDIR)$(unitdir)/uid2d.service
	chmod 0644 $(DESTDIR)$(unitdir)/uid2d.service
	$(INSTALL) -D -m 0644 systemd/uid2d.sysusers $(DESTDIR)$(sysusersdir)/uid2d.conf
	$(INSTALL) -D -m 0644 dbus/com.uid2.Manager.conf $(DESTDIR)$(dbuspolicydir)/com.uid2.Manager.conf
	$(INSTALL) -D -m 0644 dbus/com.uid2.Manager.service $(DESTDIR)$(dbusservicedir)/com.uid2.Manager.service
	$(INSTALL) -D -m 0644 dbus/com.uid2.Manager1.xml $(DESTDIR)$(dbusinterfacedir)/com.uid2.Manager1.xml
	$(INSTALL) -D -m 0644 dbus/com.uid2.Broker1.xml $(DESTDIR)$(dbusinterfacedir)/com.uid2.Broker1.xml
	$(INSTALL) -D -m 0644 dbus/com.uid2.Diagnostics1.xml $(DESTDIR)$(dbusinterfacedir)/com.uid2.Diagnostics1.xml
	$(INSTALL) -D -m 0644 dbus/com.uid2.Privacy1.xml $(DESTDIR)$(dbusinterfacedir)/com.uid2.Privacy1.xml
	$(INSTALL) -D -m 0644 dbus/com.uid2.Profiles1.xml $(DESTDIR)$(dbusinterfacedir)/com.uid2.Profiles1.xml
	@# The HTML5 gateway's unit (not enabled here: the image or the admin enables it),
	@# its system user and groups, its bus policy and interface.
	sed 's|^ExecStart=/usr/bin/uid2-gateway |ExecStart=$(bindir)/uid2-gateway |' systemd/uid2-gateway.service > $(DESTDIR)$(unitdir)/uid2-gateway.service
	chmod 0644 $(DESTDIR)$(unitdir)/uid2-gateway.service
	$(INSTALL) -D -m 0644 systemd/uid2-gateway.sysusers $(DESTDIR)$(sysusersdir)/uid2-gateway.conf
	$(INSTALL) -D -m 0644 dbus/com.uid2.Gateway.conf $(DESTDIR)$(dbuspolicydir)/com.uid2.Gateway.conf
	$(INSTALL) -D -m 0644 dbus/com.uid2.Gateway1.xml $(DESTDIR)$(dbusinterfacedir)/com.uid2.Gateway1.xml
	@# The Ripple pack: examples and templates, nothing active (no unit is changed).
	for f in $(RIPPLE_PACK); do $(INSTALL) -D -m 0644 packaging/rdk/ripple/$$f $(DESTDIR)$(ripplepackdir)/$$f || exit 1; done
	@# The vendor defaults (as shipped, every key commented out). Nothing goes to
	@# $(sysconfdir): /etc/uid2d/uid2d.toml and its drop-ins are the device's own.
	$(INSTALL) -D -m 0644 dist/uid2d.toml $(DESTDIR)$(vendorconfdir)/uid2d.toml

uninstall:
	rm -f $(DESTDIR)$(bindir)/uid2d $(addprefix $(DESTDIR)$(bindir)/,$(ROLE_LINKS))
	rm -f $(DESTDIR)$(unitdir)/uid2d.service
	rm -f $(DESTDIR)$(sysusersdir)/uid2d.conf
	rm -f $(DESTDIR)$(dbuspolicydir)/com.uid2.Manager.conf
	rm -f $(DESTDIR)$(dbusservicedir)/com.uid2.Manager.service
	rm -f $(DESTDIR)$(dbusinterfacedir)/com.uid2.Manager1.xml
	rm -f $(DESTDIR)$(dbusinterfacedir)/com.uid2.Broker1.xml
	rm -f $(DESTDIR)$(dbusinterfacedir)/com.uid2.Diagnostics1.xml
	rm -f $(DESTDIR)$(dbusinterfacedir)/com.uid2.Privacy1.xml
	rm -f $(DESTDIR)$(dbusinterfacedir)/com.uid2.Profiles1.xml
	rm -f $(DESTDIR)$(unitdir)/uid2-gateway.service $(DESTDIR)$(sysusersdir)/uid2-gateway.conf
	rm -f $(DESTDIR)$(dbuspolicydir)/com.uid2.Gateway.conf $(DESTDIR)$(dbusinterfacedir)/com.uid2.Gateway1.xml
	rm -f $(addprefix $(DESTDIR)$(ripplepackdir)/,$(RIPPLE_PACK))
	rmdir $(DESTDIR)$(ripplepackdir)/uid2-gateway.service.d $(DESTDIR)$(ripplepackdir)/ripple.service.d \
		$(DESTDIR)$(ripplepackdir) $(DESTDIR)$(datadir)/uid2d/rdk $(DESTDIR)$(datadir)/uid2d 2>/dev/null || true
	rm -f $(DESTDIR)$(vendorconfdir)/uid2d.toml
	rmdir $(DESTDIR)$(vendorconfdir) 2>/dev/null || true
	@echo "kept $(DESTDIR)$(sysconfdir)/uid2d/ (the device's config) and the state in /var/lib/uid2d"

test:
	./scripts/test.sh

check-unit:
	./scripts/check-unit.sh

clean:
	$(CARGO) clean
