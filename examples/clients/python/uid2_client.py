#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Minimal uid2d client in Python with dbus-fast (pip install dbus-fast).

Subscribes to IdentityStatusChanged, prints the status and the advertising
token, then the token info (GetTokenInfo: labels and times, never a token) and
the OpenRTB user.eids JSON for ad requests (GetEids), waits (at most 30 s) for
one status change, prints it and the token again. The bus is the system bus (BusType.SYSTEM honours
DBUS_SYSTEM_BUS_ADDRESS).
"""

import asyncio
import json
import sys

from dbus_fast import BusType, DBusError
from dbus_fast.aio import MessageBus

SERVICE = "com.uid2.Manager"
PATH = "/com/uid2/Manager"
INTERFACE = "com.uid2.Manager1"
WAIT_SECONDS = 30


async def main() -> int:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    changed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_status_changed(status: str) -> None:
        if not changed.done():
            changed.set_result(status)

    try:
        # The interface as the daemon describes it; an app may instead read
        # the installed /usr/share/dbus-1/interfaces/com.uid2.Manager1.xml.
        introspection = await bus.introspect(SERVICE, PATH)
        proxy = bus.get_proxy_object(SERVICE, PATH, introspection)
        manager = proxy.get_interface(INTERFACE)
        # 1. Subscribe first: uid2d sends the signal to our connection only.
        manager.on_identity_status_changed(on_status_changed)
        # 2. The first call also tells uid2d to send us our status changes.
        status = await manager.call_get_identity_status()
        print(f"status={status}", flush=True)
        # 3. Call before every ad request; "" means no identity to use.
        token = await manager.call_get_advertising_token()
        print(f"token={token}", flush=True)
        # 4. What to label the token with ("source": uidapi.com or euid.eu) and
        #    when it expires (ms since the epoch); a{sv} arrives as Variants.
        info = await manager.call_get_token_info()
        plain = {key: variant.value for key, variant in info.items()}
        print(f"info={json.dumps(plain, sort_keys=True)}", flush=True)
        # 5. The user.eids array to put in an OpenRTB 2.6 bid request as is.
        eids = await manager.call_get_eids()
        print(f"eids={eids}", flush=True)
        # 6. Wait for one status change.
        status = await asyncio.wait_for(changed, WAIT_SECONDS)
        print(f"changed={status}", flush=True)
        token = await manager.call_get_advertising_token()
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
