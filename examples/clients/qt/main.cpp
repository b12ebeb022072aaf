// SPDX-License-Identifier: Apache-2.0
//
// Minimal uid2d client in C++ with QtDBus and a proxy generated from the interface XML
// by `qdbusxml2cpp -p uid2manager1 com.uid2.Manager1.xml` (see the Makefile).
//
// Subscribes to IdentityStatusChanged and follows uid2d's bus name (QDBusServiceWatcher),
// prints the status and the advertising token, waits (at most 30 s) for one status change,
// prints it and the token again. Whenever uid2d restarts meanwhile (com.uid2.Manager gets
// a new owner), it calls again, as the contract asks, and prints the status and token
// again. The bus is the system bus (QDBusConnection::systemBus() honours
// DBUS_SYSTEM_BUS_ADDRESS).
#include <cstdio>

#include <QCoreApplication>
#include <QDBusServiceWatcher>
#include <QTimer>

#include "uid2manager1.h"

// Prints "LABEL=value", or "error=<D-Bus error name>" and returns false.
static bool print(const char *label, QDBusPendingReply<QString> reply)
{
    reply.waitForFinished();
    if (reply.isError()) {
        std::printf("error=%s\n", qPrintable(reply.error().name()));
        return false;
    }
    // "token=" alone: there is no token to use now.
    std::printf("%s=%s\n", label, qPrintable(reply.value()));
    return true;
}

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    QDBusConnection bus = QDBusConnection::systemBus();
    if (!bus.isConnected()) {
        std::fprintf(stderr, "cannot connect to the system bus: %s\n",
                     qPrintable(bus.lastError().message()));
        return 1;
    }
    com::uid2::Manager1 manager(QStringLiteral("com.uid2.Manager"),
                                QStringLiteral("/com/uid2/Manager"), bus);

    // 1. Subscribe first: uid2d sends the signal to our connection only. Follow its name
    //    too: a uid2d that restarts knows nothing of us until we call again.
    bool changed = false;
    QObject::connect(&manager, &com::uid2::Manager1::IdentityStatusChanged,
                     &app, [&](const QString &status) {
                         if (changed)
                             return;
                         changed = true;
                         std::printf("changed=%s\n", qPrintable(status));
                         app.exit(print("token", manager.GetAdvertisingToken()) ? 0 : 1);
                     });
    QDBusServiceWatcher restarts(QStringLiteral("com.uid2.Manager"), bus,
                                 QDBusServiceWatcher::WatchForRegistration);
    QObject::connect(&restarts, &QDBusServiceWatcher::serviceRegistered, &app, [&] {
        // A new uid2d: call again (then it sends us our changes) and read the status and
        // token again, which may have changed while it was away.
        if (!print("status", manager.GetIdentityStatus()) ||
            !print("token", manager.GetAdvertisingToken()))
            app.exit(1);
    });
    // 2. The first call also tells uid2d to send us our status changes.
    if (!print("status", manager.GetIdentityStatus()))
        return 1;
    // 3. Call before every ad request; "" means no identity to use (fall back).
    if (!print("token", manager.GetAdvertisingToken()))
        return 1;

    // 4. Wait for one status change.
    QTimer::singleShot(30 * 1000, &app, [&] {
        std::fprintf(stderr, "no IdentityStatusChanged within 30 s\n");
        app.exit(1);
    });
    return app.exec();
}
