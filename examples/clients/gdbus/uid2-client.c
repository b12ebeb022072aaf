/* SPDX-License-Identifier: Apache-2.0
 *
 * Minimal uid2d client in C with GDBus and a proxy generated from the interface XML:
 *
 *   gdbus-codegen --interface-prefix com.uid2. --c-namespace Uid2 \
 *       --generate-c-code uid2-generated com.uid2.Manager1.xml
 *   gcc -Wall -Wextra -O2 -o uid2-client uid2-client.c uid2-generated.c \
 *       $(pkg-config --cflags --libs gio-2.0 gio-unix-2.0)
 *
 * Subscribes to IdentityStatusChanged and follows uid2d's bus name (the proxy's
 * g-name-owner), prints the status and the advertising token, waits (at most 30 s) for one
 * status change, prints it and the token again. Whenever uid2d restarts meanwhile
 * (com.uid2.Manager gets a new owner), it calls again, as the contract asks, and prints
 * the status and token again. The bus is the system bus (G_BUS_TYPE_SYSTEM honours
 * DBUS_SYSTEM_BUS_ADDRESS).
 */
#include <stdio.h>
#include <gio/gio.h>

#include "uid2-generated.h"

#define WAIT_SECONDS 30

typedef struct {
    GMainLoop *loop;
    gchar *changed;
    gboolean failed;
} State;

/* Prints "error=<D-Bus error name>" for a failed call. */
static void print_error(GError *error) {
    gchar *name = g_dbus_error_get_remote_error(error);

    printf("error=%s\n", name ? name : error->message);
    g_free(name);
}

/* Prints "status=<status>"; the call also tells uid2d to send us our status changes. */
static gboolean print_status(Uid2Manager1 *manager) {
    g_autoptr(GError) error = NULL;
    g_autofree gchar *status = NULL;

    if (!uid2_manager1_call_get_identity_status_sync(manager, &status, NULL, &error)) {
        print_error(error);
        return FALSE;
    }
    printf("status=%s\n", status);
    return TRUE;
}

/* Prints "token=<token>"; "token=" alone means there is no token to use now. */
static gboolean print_token(Uid2Manager1 *manager) {
    g_autoptr(GError) error = NULL;
    g_autofree gchar *token = NULL;

    if (!uid2_manager1_call_get_advertising_token_sync(manager, &token, NULL, &error)) {
        print_error(error);
        return FALSE;
    }
    printf("token=%s\n", token);
    return TRUE;
}

static void on_status_changed(Uid2Manager1 *manager, const gchar *status, gpointer user_data) {
    State *state = user_data;

    (void)manager;
    if (state->changed == NULL) {
        state->changed = g_strdup(status);
        g_main_loop_quit(state->loop);
    }
}

/* uid2d's name has a new owner, or none: a new uid2d knows nothing of us until we call
 * again, and the status and token may have changed while it was away. */
static void on_name_owner(GObject *proxy, GParamSpec *pspec, gpointer user_data) {
    State *state = user_data;
    g_autofree gchar *owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(proxy));

    (void)pspec;
    if (owner == NULL)
        return;
    if (!print_status(UID2_MANAGER1(proxy)) || !print_token(UID2_MANAGER1(proxy))) {
        state->failed = TRUE;
        g_main_loop_quit(state->loop);
    }
}

static gboolean on_timeout(gpointer user_data) {
    State *state = user_data;

    g_main_loop_quit(state->loop);
    return G_SOURCE_REMOVE;
}

int main(void) {
    g_autoptr(GError) error = NULL;
    Uid2Manager1 *manager;
    State state = {NULL, NULL, FALSE};
    int rc = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    manager = uid2_manager1_proxy_new_for_bus_sync(
        G_BUS_TYPE_SYSTEM, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES, "com.uid2.Manager",
        "/com/uid2/Manager", NULL, &error);
    if (manager == NULL) {
        fprintf(stderr, "cannot connect to the system bus: %s\n", error->message);
        return 1;
    }
    /* 1. Subscribe first: uid2d sends the signal to our connection only. Follow its name
     *    too: a uid2d that restarts knows nothing of us until we call again. */
    state.loop = g_main_loop_new(NULL, FALSE);
    g_signal_connect(manager, "identity-status-changed", G_CALLBACK(on_status_changed), &state);
    g_signal_connect(manager, "notify::g-name-owner", G_CALLBACK(on_name_owner), &state);

    /* 2. The first call also tells uid2d to send us our status changes. */
    if (!print_status(manager))
        goto out;
    /* 3. Call before every ad request; "" means no identity to use (fall back). */
    if (!print_token(manager))
        goto out;

    /* 4. Wait for one status change (a new uid2d is called again meanwhile). */
    g_timeout_add_seconds(WAIT_SECONDS, on_timeout, &state);
    g_main_loop_run(state.loop);
    if (state.failed)
        goto out;
    if (state.changed == NULL) {
        fprintf(stderr, "no IdentityStatusChanged within %d s\n", WAIT_SECONDS);
        goto out;
    }
    printf("changed=%s\n", state.changed);
    if (print_token(manager))
        rc = 0;

out:
    g_free(state.changed);
    g_main_loop_unref(state.loop);
    g_object_unref(manager);
    return rc;
}
