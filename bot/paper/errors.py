"""Binance error answers: `{"code": -2019, "msg": "Margin is insufficient."}` with its HTTP status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class BinanceError(Exception):
    """An error the paper exchange answers with, exactly as Binance would."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def invalid_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def api_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def outside_recv_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, value: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{value}'.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def invalid_side() -> BinanceError:
    return BinanceError(-1117, "Invalid side.")


def invalid_order_type() -> BinanceError:
    return BinanceError(-1116, "Invalid orderType.")


def algo_only_type() -> BinanceError:
    return BinanceError(
        -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
    )


def invalid_tif() -> BinanceError:
    return BinanceError(-1115, "Invalid timeInForce.")


def precision_over_max() -> BinanceError:
    return BinanceError(-1111, "Precision is over the maximum defined for this asset.")


def qty_not_positive() -> BinanceError:
    return BinanceError(-4003, "Quantity less than or equal to zero.")


def qty_above_max() -> BinanceError:
    return BinanceError(-4005, "Quantity greater than max quantity.")


def qty_below_min() -> BinanceError:
    return BinanceError(-4003, "Quantity less than or equal to zero.")


def price_not_positive() -> BinanceError:
    return BinanceError(-4001, "Price less than 0.")


def price_below_min() -> BinanceError:
    return BinanceError(-4013, "Price less than min price.")


def price_above_max(limit: str) -> BinanceError:
    return BinanceError(-4016, f"Limit price can't be higher than {limit}.")


def price_off_tick() -> BinanceError:
    return BinanceError(-4014, "Price not increased by tick size.")


def min_notional(limit: str) -> BinanceError:
    return BinanceError(-4164, f"Order's notional must be no smaller than {limit} (unless you choose reduce only).")


def margin_insufficient() -> BinanceError:
    return BinanceError(-2019, "Margin is insufficient.")


def reduce_only_rejected() -> BinanceError:
    return BinanceError(-2022, "ReduceOnly Order is rejected.")


def max_position_exceeded() -> BinanceError:
    return BinanceError(-2027, "Exceeded the maximum allowable position at current leverage.")


def leverage_invalid(value: str) -> BinanceError:
    return BinanceError(-4028, f"Leverage {value} is not valid")


def client_id_invalid() -> BinanceError:
    return BinanceError(-4015, "Client order id is not valid.")


def client_id_duplicated() -> BinanceError:
    return BinanceError(-4116, "ClientOrderId is duplicated.")


def unknown_order() -> BinanceError:
    return BinanceError(-2011, "Unknown order sent.")


@contextmanager
def cancelling() -> Iterator[None]:
    """A cancel of an order that does not exist answers -2011 (Unknown order sent), not a lookup's -2013."""
    try:
        yield
    except BinanceError as exc:
        if exc.code == -2013:
            raise unknown_order() from None
        raise


def order_does_not_exist() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def post_only_rejected() -> BinanceError:
    return BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")


def no_need_margin_type() -> BinanceError:
    return BinanceError(-4046, "No need to change margin type.")


def no_need_position_side() -> BinanceError:
    return BinanceError(-4059, "No need to change position side.")


def position_side_locked() -> BinanceError:
    return BinanceError(-4068, "Position side cannot be changed if there exists position.")


def position_side_mismatch() -> BinanceError:
    return BinanceError(-4061, "Order's position side does not match user's setting.")


def margin_type_with_position() -> BinanceError:
    return BinanceError(-4048, "Margin type cannot be changed if there exists position.")


def stop_price_missing() -> BinanceError:
    return BinanceError(-1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.")


def would_trigger_immediately() -> BinanceError:
    return BinanceError(-2021, "Order would immediately trigger.")


def listen_key_missing() -> BinanceError:
    return BinanceError(-1125, "This listenKey does not exist.")


def transfer_balance() -> BinanceError:
    return BinanceError(-8105, "Balance is insufficient for transfer.")


def sub_account_unknown() -> BinanceError:
    return BinanceError(-12022, "Sub-account does not exist.")


def too_many_requests() -> BinanceError:
    return BinanceError(-1003, "Too many requests; current limit is 2400 requests per minute.", 429)


def ip_banned() -> BinanceError:
    return BinanceError(-1003, "Way too many requests; IP banned until 1800000000000.", 418)


def too_many_orders(limit: str) -> BinanceError:
    return BinanceError(-1015, f"Too many new orders; current limit is {limit}.", 429)
