/* SPDX-License-Identifier: Apache-2.0
 *
 * Minimal uid2d client in C with sd-bus (libsystemd).
 *
 *   gcc -Wall -Wextra -O2 -o uid2-client uid2-client.c $(pkg-config --cflags --libs libsystemd)
 *
 * Subscribes to IdentityStatusChanged and follows uid2d's bus name, prints the status and
 * the advertising token, waits (at most 30 s) for one status change, prints it and the
 * token again. Whenever uid2d restarts meanwhile (com.uid2.Manager gets a new owner), it
 * calls again, as the contract asks, and prints the status and token again. The bus is
 * the system bus (sd_bus_open_system honours DBUS_SYSTEM_BUS_ADDRESS).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>

#define UID2_SERVICE "com.uid2.Manager"
#define UID2_PATH "/com/uid2/Manager"
#define UID2_INTERFACE "com.uid2.Manager1"
#define WAIT_USEC (30ULL * 1000 * 1000)
/* The bus's NameOwnerChanged for uid2d's name only (arg0), not for every client. */
#define UID2_OWNER_RULE                                                                  \
    "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"          \
    "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" UID2_SERVICE "'"

/* IdentityStatusChanged(s status): keep the first status we get. */
static int on_status_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    char **changed = userdata;
    const char *status;
    int r;

    (void)ret_error;
    r = sd_bus_message_read(m, "s", &status);
    if (r < 0)
        return r;
    if (*changed == NULL)
        *changed = strdup(status);
    return 0;
}

/* NameOwnerChanged(s name, s old_owner, s new_owner) of uid2d's name: note a new uid2d. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    int *restarted = userdata;
    const char *name, *old_owner, *new_owner;
    int r;

    (void)ret_error;
    r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
    if (r < 0)
        return r;
    if (*new_owner != '\0')
        *restarted = 1;
    return 0;
}

/* Calls METHOD (no arguments, one string back) and prints "LABEL=value", or
 * "error=<D-Bus error name>" and returns a negative errno. */
static int print_string_call(sd_bus *bus, const char *method, const char *label) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    const char *value;
    int r;

    r = sd_bus_call_method(bus, UID2_SERVICE, UID2_PATH, UID2_INTERFACE, method, &error,
                           &reply, "");
    if (r >= 0)
        r = sd_bus_message_read(reply, "s", &value);
    if (r < 0)
        printf("error=%s\n", error.name ? error.name : strerror(-r));
    else
        printf("%s=%s\n", label, value); /* "token=" alone: no token to use now */
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    return r;
}

static uint64_t now_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

int main(void) {
    sd_bus *bus = NULL;
    sd_bus_slot *slot = NULL, *owner_slot = NULL;
    char *changed = NULL;
    int restarted = 0;
    uint64_t deadline;
    int r;

    setvbuf(stdout, NULL, _IOLBF, 0);
    r = sd_bus_open_system(&bus);
    if (r < 0) {
        fprintf(stderr, "cannot connect to the system bus: %s\n", strerror(-r));
        return 1;
    }
    /* 1. Subscribe first: uid2d sends the signal to our connection only. Follow its name
     *    too: a uid2d that restarts knows nothing of us until we call again. */
    r = sd_bus_match_signal(bus, &slot, UID2_SERVICE, UID2_PATH, UID2_INTERFACE,
                            "IdentityStatusChanged", on_status_changed, &changed);
    if (r >= 0)
        r = sd_bus_add_match(bus, &owner_slot, UID2_OWNER_RULE, on_owner_changed, &restarted);
    if (r < 0) {
        fprintf(stderr, "cannot subscribe: %s\n", strerror(-r));
        goto out;
    }
    /* 2. The first call also tells uid2d to send us our status changes. */
    r = print_string_call(bus, "GetIdentityStatus", "status");
    /* 3. Call before every ad request; "" means no identity to use (fall back). */
    if (r >= 0)
        r = print_string_call(bus, "GetAdvertisingToken", "token");
    if (r < 0)
        goto out;

    /* 4. Wait for one status change. A new uid2d: call again (then it sends us our
     *    changes) and read the status and token again, which may have changed meanwhile. */
    deadline = now_usec() + WAIT_USEC;
    while (changed == NULL) {
        uint64_t now = now_usec();

        r = sd_bus_process(bus, NULL);
        if (r < 0)
            break;
        if (restarted) {
            restarted = 0;
            r = print_string_call(bus, "GetIdentityStatus", "status");
            if (r >= 0)
                r = print_string_call(bus, "GetAdvertisingToken", "token");
            if (r < 0)
                break;
            continue;
        }
        if (r > 0)
            continue;
        if (now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        r = sd_bus_wait(bus, deadline - now);
        if (r < 0)
            break;
    }
    if (changed == NULL) {
        fprintf(stderr, "no IdentityStatusChanged: %s\n", strerror(-r));
        r = -ETIMEDOUT;
        goto out;
    }
    printf("changed=%s\n", changed);
    r = print_string_call(bus, "GetAdvertisingToken", "token");

out:
    free(changed);
    sd_bus_slot_unref(owner_slot);
    sd_bus_slot_unref(slot);
    sd_bus_flush_close_unref(bus);
    return r < 0 ? 1 : 0;
}
