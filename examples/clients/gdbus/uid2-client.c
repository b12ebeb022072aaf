/* SPDX-License-Identifier: Apache-2.0
 *
 * Minimal uid2d client in C with GDBus and a proxy generated from the interface XML:
 *
 *   gdbus-codegen --interface-prefix com.uid2. --c-namespace Uid2 \
 *       --generate-c-code uid2-generated com.uid2.Manager1.xml
 *   gcc -Wall -Wextra -O2 -o uid2-client uid2-client.c uid2-generated.c \
 *       $(pkg-config --cflags --libs gio-2.0 gio-unix-2.0)
 *
 * Subscribes to IdentityStatusChanged, prints the status and the advertising token,
 * waits (at most 30 s) for one status change, prints it and the token again. The bus is
 * the system bus (G_BUS_TYPE_SYSTEM honours DBUS_SYSTEM_BUS_ADDRESS).
 */
#include <stdio.h>
#include <gio/gio.h>

#include "uid2-generated.h"

#define WAIT_SECONDS 30

typedef struct {
    GMainLoop *loop;
    gchar *changed;
} State;

/* Prints "error=<D-Bus error name>" for a failed call. */
static void print_error(GError *error) {
    gchar *name = g_dbus_error_get_remote_error(error);

    printf("error=%s\n", name ? name : error->message);
    g_free(name);
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

static gboolean on_timeout(gpointer user_data) {
    State *state = user_data;

    g_main_loop_quit(state->loop);
    return G_SOURCE_REMOVE;
}

int main(void) {
    g_autoptr(GError) error = NULL;
    Uid2Manager1 *manager;
    g_autofree gchar *status = NULL;
    State state = {NULL, NULL};
    int rc = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    manager = uid2_manager1_proxy_new_for_bus_sync(
        G_BUS_TYPE_SYSTEM, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES, "com.uid2.Manager",
        "/com/uid2/Manager", NULL, &error);
    if (manager == NULL) {
        fprintf(stderr, "cannot connect to the system bus: %s\n", error->message);
        return 1;
    }
    /* 1. Subscribe first: uid2d sends the signal to our connection only. */
    state.loop = g_main_loop_new(NULL, FALSE);
    g_signal_connect(manager, "identity-status-changed", G_CALLBACK(on_status_changed), &state);

    /* 2. The first call also tells uid2d to send us our status changes. */
    if (!uid2_manager1_call_get_identity_status_sync(manager, &status, NULL, &error)) {
        print_error(error);
        goto out;
    }
    printf("status=%s\n", status);
    /* 3. Call before every ad request; "" means no identity to use (fall back). */
    if (!print_token(manager))
        goto out;

    /* 4. Wait for one status change. */
    g_timeout_add_seconds(WAIT_SECONDS, on_timeout, &state);
    g_main_loop_run(state.loop);
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
