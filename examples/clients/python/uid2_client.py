#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Minimal uid2d client in Python with dbus-fast (pip install dbus-fast).

Subscribes to IdentityStatusChanged and follows uid2d's bus name, prints the
status and the advertising token, then the token info (GetTokenInfo: labels and
times, never a token) and the OpenRTB user.eids JSON for ad requests (GetEids),
waits (at most 30 s) for one status change, prints it and the token again.
Whenever uid2d restarts meanwhile (com.uid2.Manager gets a new owner), it calls
again, as the contract asks, and prints the status and token again. With
UID2_APP_ID set, it
does the same for that app through com.uid2.Broker1, as an HTML5 runtime or
app manager would (root or the configured broker_group only). The bus is the
system bus (BusType.SYSTEM honours DBUS_SYSTEM_BUS_ADDRESS).
"""

import asyncio
import json
import os
import sys

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

SERVICE = "com.uid2.Manager"
PATH = "/com/uid2/Manager"
INTERFACE = "com.uid2.Manager1"
BROKER = "com.uid2.Broker1"
WAIT_SECONDS = 30
# The bus's NameOwnerChanged for uid2d's name only (arg0), not for every client.
OWNER_RULE = ("type='signal',sender='org.freedesktop.DBus',"
              "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
              f"member='NameOwnerChanged',arg0='{SERVICE}'")


async def main() -> int:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    changed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    restarted = asyncio.Event()

    def on_status_changed(status: str) -> None:
        if not changed.done():
            changed.set_result(status)

    def on_owner_changed(message: Message) -> None:
        if (message.message_type == MessageType.SIGNAL
                and message.sender == "org.freedesktop.DBus"
                and message.member == "NameOwnerChanged"
                and message.body[0] == SERVICE and message.body[2]):
            restarted.set()

    try:
        # The interface as the daemon describes it; an app may instead read
        # the installed /usr/share/dbus-1/interfaces/com.uid2.Manager1.xml.
        introspection = await bus.introspect(SERVICE, PATH)
        proxy = bus.get_proxy_object(SERVICE, PATH, introspection)
        app = os.environ.get("UID2_APP_ID")
        if app:
            # A broker: every call names the app; the signal names it too.
            broker = proxy.get_interface(BROKER)
            broker.on_identity_status_changed(
                lambda app_id, status: app_id == app and on_status_changed(status))
            get_status = lambda: broker.call_get_identity_status(app)  # noqa: E731
            get_token = lambda: broker.call_get_advertising_token(app)  # noqa: E731
            get_info = lambda: broker.call_get_token_info(app)  # noqa: E731
            get_eids = lambda: broker.call_get_eids(app)  # noqa: E731
        else:
            manager = proxy.get_interface(INTERFACE)
            # Subscribe first: uid2d sends the signal to our connection only.
            manager.on_identity_status_changed(on_status_changed)
            get_status = manager.call_get_identity_status
            get_token = manager.call_get_advertising_token
            get_info = manager.call_get_token_info
            get_eids = manager.call_get_eids
        # Follow uid2d's name too: a uid2d that restarts knows nothing of us
        # until we call again.
        bus.add_message_handler(on_owner_changed)
        await bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch",
            signature="s", body=[OWNER_RULE]))
        # The first call also tells uid2d to send us our status changes.
        status = await get_status()
        print(f"status={status}", flush=True)
        # Call before every ad request; "" means no identity to use.
        token = await get_token()
        print(f"token={token}", flush=True)
        # What to label the token with ("source": uidapi.com or euid.eu) and
        # when it expires (ms since the epoch); a{sv} arrives as Variants.
        info = await get_info()
        plain = {key: variant.value for key, variant in info.items()}
        print(f"info={json.dumps(plain, sort_keys=True)}", flush=True)
        # The user.eids array to put in an OpenRTB 2.6 bid request as is.
        eids = await get_eids()
        print(f"eids={eids}", flush=True)
        # Wait for one status change. A new uid2d: call again (then it sends
        # us our changes) and read the status and token again, which may have
        # changed while it was away.

        async def next_change() -> str:
            while True:
                restart = asyncio.ensure_future(restarted.wait())
                await asyncio.wait({changed, restart},
                                   return_when=asyncio.FIRST_COMPLETED)
                if changed.done():
                    restart.cancel()
                    return changed.result()
                restarted.clear()
                print(f"status={await get_status()}", flush=True)
                print(f"token={await get_token()}", flush=True)

        status = await asyncio.wait_for(next_change(), WAIT_SECONDS)
        print(f"changed={status}", flush=True)
        token = await get_token()
        print(f"token={token}", flush=True)
    except DBusError as error:
        print(f"error={error.type}", flush=True)
        return 1
    except asyncio.TimeoutError:
        print(f"no IdentityStatusChanged within {WAIT_SECONDS} s",
              file=sys.stderr)
        return 1
    finally:
        bus.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
