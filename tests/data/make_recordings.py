"""Write the provider replies the offline tests replay (run once; the outputs are checked in).

Nothing here talks to a network. The files are in the providers' real wire formats:

- ``yfinance/``: Yahoo's chart API JSON (``/v8/finance/chart/<SYMBOL>``) for 1m bars and for the
  1d time-zone probe yfinance sends first, the cookie (``fc.yahoo.com``) and crumb
  (``/v1/test/getcrumb``) replies, a 429 and a malformed reply, and the live stream as the JSON
  text frames ``{"type": "pricing", "message": "<base64 PricingData protobuf>"}``.
- ``alphavantage/``: ``GLOBAL_QUOTE`` and ``TIME_SERIES_INTRADAY`` JSON, the quota replies that
  arrive as HTTP 200 with ``Note``/``Information``, an ``Error Message`` reply, malformed JSON
  and an HTTP 500 body.

The recorded session is Tuesday 2026-11-24 (XNYS, EST = UTC-5): 1m bars from 09:30 to 10:30 ET
(14:30-15:30 UTC), recorded at 10:30:20 ET, the stream from 10:30:00 to 10:30:20.

    python tests/data/make_recordings.py
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
from pathlib import Path

from yfinance.pricing_pb2 import PricingData

HERE = Path(__file__).parent
YF = HERE / "yfinance"
AV = HERE / "alphavantage"
SESSION_OPEN = 1795530600  # 2026-11-24 14:30:00 UTC = 09:30 ET
RECORDED_AT = SESSION_OPEN + 3600 + 20  # 10:30:20 ET
ET = dt.timezone(dt.timedelta(hours=-5))


def walk(rng: random.Random, start: float, n: int, step: float) -> list[float]:
    out, p = [], start
    for _ in range(n):
        p = round(p + rng.gauss(0, step), 2)
        out.append(p)
    return out


def bars(
    rng: random.Random, start_px: float, n: int
) -> list[tuple[float, float, float, float, int]]:
    closes = walk(rng, start_px, n, start_px * 0.0006)
    out = []
    prev = start_px
    for c in closes:
        o = prev
        hi = round(max(o, c) + abs(rng.gauss(0, start_px * 0.0003)), 2)
        lo = round(min(o, c) - abs(rng.gauss(0, start_px * 0.0003)), 2)
        out.append((o, hi, lo, c, rng.randint(40_000, 400_000)))
        prev = c
    return out


def chart_meta(symbol: str, name: str, exch: str, full: str, price: float, prev: float) -> dict:
    day_start = SESSION_OPEN - 5 * 3600 - 30 * 60  # 04:00 ET
    return {
        "currency": "USD",
        "symbol": symbol,
        "exchangeName": exch,
        "fullExchangeName": full,
        "instrumentType": "EQUITY",
        "firstTradeDate": 345479400,
        "regularMarketTime": RECORDED_AT,
        "hasPrePostMarketData": True,
        "gmtoffset": -18000,
        "timezone": "EST",
        "exchangeTimezoneName": "America/New_York",
        "regularMarketPrice": price,
        "longName": name,
        "shortName": name,
        "chartPreviousClose": prev,
        "previousClose": prev,
        "scale": 3,
        "priceHint": 2,
        "currentTradingPeriod": {
            "pre": {
                "timezone": "EST",
                "start": day_start,
                "end": SESSION_OPEN,
                "gmtoffset": -18000,
            },
            "regular": {
                "timezone": "EST",
                "start": SESSION_OPEN,
                "end": SESSION_OPEN + 23400,
                "gmtoffset": -18000,
            },
            "post": {
                "timezone": "EST",
                "start": SESSION_OPEN + 23400,
                "end": SESSION_OPEN + 37800,
                "gmtoffset": -18000,
            },
        },
        "tradingPeriods": [
            [
                {
                    "timezone": "EST",
                    "start": SESSION_OPEN,
                    "end": SESSION_OPEN + 23400,
                    "gmtoffset": -18000,
                }
            ]
        ],
        "dataGranularity": "1m",
        "range": "",
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
    }


def write_chart(
    symbol: str, name: str, exch: str, full: str, start_px: float, seed: int
) -> list[float]:
    rng = random.Random(seed)
    rows = bars(rng, start_px, 61)  # 09:30 .. 10:30 (the last one still forming)
    ts = [SESSION_OPEN + 60 * i for i in range(61)]
    q = {k: [] for k in ("open", "high", "low", "close", "volume")}
    for i, (o, h, lo, c, v) in enumerate(rows):
        if i in (17, 41):  # Yahoo sends nulls for minutes it has no data for
            for k in q:
                q[k].append(None)
            continue
        q["open"].append(o)
        q["high"].append(h)
        q["low"].append(lo)
        q["close"].append(c)
        q["volume"].append(v)
    meta = chart_meta(symbol, name, exch, full, rows[-1][3], round(start_px * 0.995, 2))
    body = {
        "chart": {
            "result": [{"meta": meta, "timestamp": ts, "indicators": {"quote": [q]}}],
            "error": None,
        }
    }
    (YF / f"chart_{symbol}_1m.json").write_text(json.dumps(body, separators=(",", ":")) + "\n")
    tz_meta = dict(meta, dataGranularity="1d", range="1d")
    tz_meta.pop("tradingPeriods")
    daily = {
        "open": [rows[0][0]],
        "high": [max(r[1] for r in rows)],
        "low": [min(r[2] for r in rows)],
        "close": [rows[-1][3]],
        "volume": [sum(r[4] for r in rows)],
    }
    tz_body = {
        "chart": {
            "result": [
                {
                    "meta": tz_meta,
                    "timestamp": [SESSION_OPEN],
                    "indicators": {"quote": [daily], "adjclose": [{"adjclose": [rows[-1][3]]}]},
                }
            ],
            "error": None,
        }
    }
    (YF / f"chart_{symbol}_1d.json").write_text(json.dumps(tz_body, separators=(",", ":")) + "\n")
    return [r[3] for r in rows]


def frame(msg: PricingData) -> str:
    return json.dumps(
        {"type": "pricing", "message": base64.b64encode(msg.SerializeToString()).decode()}
    )


def write_stream(last: dict[str, float]) -> None:
    rng = random.Random(11)
    lines = []
    vol = {"AAPL": 18_204_511, "MSFT": 9_870_231}
    px = dict(last)
    t0 = (SESSION_OPEN + 3600) * 1000
    for i in range(40):
        for sym in ("AAPL", "MSFT"):
            px[sym] = round(px[sym] + rng.gauss(0, 0.03), 2)
            vol[sym] += rng.randint(100, 2_000) if i % 3 else 0  # some updates carry no volume
            m = PricingData(
                id=sym,
                price=px[sym],
                time=t0 + i * 500 + (0 if sym == "AAPL" else 120),
                currency="USD",
                exchange="NMS",
                quote_type=8,  # EQUITY
                market_hours=1,  # REGULAR_MARKET
                day_volume=vol[sym],
                change=round(px[sym] - last[sym] * 0.995, 4),
                price_hint=2,
            )
            if sym == "AAPL" and i % 4 == 0:
                m.bid, m.ask = px[sym] - 0.01, px[sym] + 0.01
                m.bid_size, m.ask_size = 300, 200
            lines.append(frame(m))
        if i == 20:
            lines.append(frame(PricingData(id="", quote_type=7, time=t0 + i * 500)))  # heartbeat
    (YF / "stream_AAPL_MSFT.jsonl").write_text("\n".join(lines) + "\n")


def write_yahoo_misc() -> None:
    (YF / "getcrumb.txt").write_text("Qm7vJp1aZ3u")
    (YF / "fc.yahoo.com.html").write_text(
        "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>"
        "<h1>404 Not Found</h1></body></html>\n"
    )
    (YF / "too_many_requests.txt").write_text("Too Many Requests\r\n")
    (YF / "chart_malformed.json").write_text(
        '{"chart":{"result":[{"meta":{"currency":"USD","symbol":"AAPL","exch'
    )
    (YF / "chart_not_found.json").write_text(
        json.dumps(
            {
                "chart": {
                    "result": None,
                    "error": {
                        "code": "Not Found",
                        "description": "No data found, symbol may be delisted",
                    },
                }
            }
        )
        + "\n"
    )


def av_time(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, ET).strftime("%Y-%m-%d %H:%M:%S")


def write_alphavantage() -> None:
    rng = random.Random(5)
    rows = bars(rng, 221.40, 61)
    series = {}
    for i, (o, h, lo, c, v) in enumerate(rows):
        series[av_time(SESSION_OPEN + 60 * i)] = {
            "1. open": f"{o:.4f}",
            "2. high": f"{h:.4f}",
            "3. low": f"{lo:.4f}",
            "4. close": f"{c:.4f}",
            "5. volume": str(v // 10),
        }
    ordered = dict(sorted(series.items(), reverse=True))  # newest first, like Alpha Vantage
    body = {
        "Meta Data": {
            "1. Information": "Intraday (1min) open, high, low, close prices and volume",
            "2. Symbol": "IBM",
            "3. Last Refreshed": next(iter(ordered)),
            "4. Interval": "1min",
            "5. Output Size": "Compact",
            "6. Time Zone": "US/Eastern",
        },
        "Time Series (1min)": ordered,
    }
    (AV / "intraday_IBM_1min.json").write_text(json.dumps(body, indent=4) + "\n")
    last = rows[-1]
    quote = {
        "Global Quote": {
            "01. symbol": "IBM",
            "02. open": f"{rows[0][0]:.4f}",
            "03. high": f"{max(r[1] for r in rows):.4f}",
            "04. low": f"{min(r[2] for r in rows):.4f}",
            "05. price": f"{last[3]:.4f}",
            "06. volume": "1843517",
            "07. latest trading day": "2026-11-24",
            "08. previous close": "220.1200",
            "09. change": f"{last[3] - 220.12:.4f}",
            "10. change percent": f"{(last[3] - 220.12) / 220.12 * 100:.4f}%",
        }
    }
    (AV / "global_quote_IBM.json").write_text(json.dumps(quote, indent=4) + "\n")
    (AV / "global_quote_unknown.json").write_text(json.dumps({"Global Quote": {}}, indent=4) + "\n")
    replies = {
        "note_minute_quota.json": {
            "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 "
            "calls per minute and 500 calls per day. Please visit "
            "https://www.alphavantage.co/premium/ if you would like to target a higher API "
            "call frequency."
        },
        "information_daily_limit.json": {
            "Information": "We have detected your API key as DEMO1234 and our standard API "
            "rate limit is 25 requests per day. Please subscribe to any of the premium plans "
            "at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."
        },
        "information_premium.json": {
            "Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You "
            "may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
            "to instantly unlock all premium endpoints"
        },
        "error_invalid_call.json": {
            "Error Message": "Invalid API call. Please retry or visit the documentation "
            "(https://www.alphavantage.co/documentation/) for GLOBAL_QUOTE."
        },
        "error_invalid_key.json": {
            "Error Message": "the parameter apikey is invalid or missing. Please claim your "
            "free API key on (https://www.alphavantage.co/support/#api-key). It should take "
            "less than 20 seconds."
        },
    }
    for name, body in replies.items():
        (AV / name).write_text(json.dumps(body, indent=4) + "\n")
    (AV / "malformed.json").write_text(
        '{\n    "Global Quote": {\n        "01. symbol": "IBM",\n        "05. pri'
    )
    (AV / "http_500.html").write_text(
        "<html><head><title>500 Internal Server Error</title></head><body><center>"
        "<h1>500 Internal Server Error</h1></center><hr><center>nginx</center></body></html>\n"
    )


def main() -> None:
    YF.mkdir(exist_ok=True)
    AV.mkdir(exist_ok=True)
    aapl = write_chart("AAPL", "Apple Inc.", "NMS", "NasdaqGS", 229.10, 1)
    msft = write_chart("MSFT", "Microsoft Corporation", "NMS", "NasdaqGS", 424.30, 2)
    write_stream({"AAPL": aapl[-1], "MSFT": msft[-1]})
    write_yahoo_misc()
    write_alphavantage()


if __name__ == "__main__":
    main()
