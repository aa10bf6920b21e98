"""An example trading bot: subscribe to tickserver's signals over GraphQL and print what it
would trade. It uses a third-party client (gql) over the graphql-transport-ws protocol.

    pip install 'gql[websockets]'
    python examples/bot.py --url ws://127.0.0.1:8080/graphql [--symbols AAPL,MSFT]

With auth on, pass the token: ``--token $TICKSERVER_API_TOKEN``.
"""

from __future__ import annotations

import argparse
import asyncio

from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

SIGNALS = gql(
    """
    subscription Signals($symbols: [String!]) {
      signals(symbols: $symbols) { ts symbol rule interval direction value }
    }
    """
)
QUOTE = gql("query Quote($s: String!) { quote(symbol: $s) { bid ask last } }")


async def main(url: str, symbols: list[str] | None, token: str | None, max_signals: int) -> None:
    """Print one order idea per signal (a real bot would send orders to its broker here)."""
    transport = WebsocketsTransport(
        url=url,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"token": token} if token else {},
    )
    position: dict[str, int] = {}
    seen = 0
    async with Client(transport=transport) as session:
        async for result in session.subscribe(SIGNALS, variable_values={"symbols": symbols}):
            for sig in result["signals"]:
                quote = (await session.execute(QUOTE, variable_values={"s": sig["symbol"]}))[
                    "quote"
                ]
                side = "BUY" if sig["direction"] == "up" else "SELL"
                price = quote["ask"] if side == "BUY" else quote["bid"]
                qty = 100
                position[sig["symbol"]] = position.get(sig["symbol"], 0) + (
                    qty if side == "BUY" else -qty
                )
                print(
                    f"{sig['ts']}  {sig['rule']:<12} {side:<4} {qty} {sig['symbol']:<6} "
                    f"@ {price}  (signal value {sig['value']:.4g}; position "
                    f"{position[sig['symbol']]:+d})",
                    flush=True,
                )
                seen += 1
                if max_signals and seen >= max_signals:
                    return


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="ws://127.0.0.1:8080/graphql")
    ap.add_argument("--symbols", help="comma-separated; default: all")
    ap.add_argument("--token", help="bearer token when the server requires one")
    ap.add_argument("--max-signals", type=int, default=0, help="stop after N signals (0 = never)")
    a = ap.parse_args()
    syms = [s.strip() for s in a.symbols.split(",")] if a.symbols else None
    asyncio.run(main(a.url, syms, a.token, a.max_signals))
