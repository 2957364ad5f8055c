"""The shared specs: what the guide's tables accept, what they refuse, and how values are normalized."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cue_front import ValidationError, schema
from cue_front.schema import validate, validate_partial, validate_with_warnings
from tests.support.samples import (
    DOCUMENTED_EVENTS,
    GUIDE_BANNER_CLICK,
    GUIDE_BATCH_USERS,
    GUIDE_CART,
    GUIDE_CHECKOUT,
    GUIDE_PRODUCT_CLICK,
)

GUIDE_PRODUCT = {
    "product_id": "p1",
    "variant_id": "v1",
    "categories": ["men", "summer", "jeans"],
    "name": "cool jeans",
    "brand": "zayra",
    "description": "very fashionable jeans",
    "color": "blue",
    "size": "M",
    "price": 25000,
    "full_price": 35000,
    "available": True,
    "stock": 5,
    "rating": 90,
    "extra": {"extra_feature": "details"},
    "photo_url": "https://s3.amazon.com/image.png",
    "link": "/product/p1",
    "owner_id": "user_id_3",
}
GUIDE_USER = {
    "user_id": "u1",
    "email": "xyz@abc.com",
    "title": "Mr",
    "first_name": "John",
    "last_name": "Smith",
    "profile": {"location": "santiago", "sex": "male", "segment": "platinum"},
    "wishlist": ["P1", "P3", "P4"],
    "email_subscriber": True,
    "guest_account": False,
    "timestamp": "2018-04-04 23:29:04-03:00",
}
USER = {"user_id": "019mr8mf4r", "anonymous_id": "07d35b1a", "profile": {"sex": "female"}}


def errors_of(spec: Any, data: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        validate(spec, data)
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize("event", DOCUMENTED_EVENTS, ids=lambda e: f"{e['type']}-{e.get('subtype')}")
def test_every_documented_event_is_accepted_as_is(event: dict[str, Any]) -> None:
    envelope = {"user": USER, "event": event, "timestamp": "2018-01-23 00:30:08.276Z"}
    assert validate(schema.EVENT_ENVELOPE, envelope) is envelope  # already normal: not even copied


def warnings_of(spec: Any, data: Any) -> list[str]:
    """The warnings of valid data, checking that ``validate`` takes it too."""
    value, warnings = validate_with_warnings(spec, data)
    assert validate(spec, data) == value
    return [str(warning) for warning in warnings]


# Each sample of the guide that breaks its own table: taken, with what the table says.
GUIDE_CONTRADICTIONS = [
    pytest.param(
        schema.batch_of(schema.USER), {"batch": GUIDE_BATCH_USERS},
        [f"batch[{n}].first_name: the guide's table says required" for n in (0, 1)],
        id="batch-users-without-first_name",
    ),
    pytest.param(
        schema.EVENT, GUIDE_BANNER_CLICK,
        ["category_id: the guide's table lists only type, subtype and banner_id"], id="banner-click",
    ),
    pytest.param(
        schema.EVENT, GUIDE_PRODUCT_CLICK,
        ["subtype: the guide's table says 'related', 'similar' or 'recent'"], id="product-click",
    ),
    pytest.param(
        schema.EVENT, GUIDE_CHECKOUT,
        [f"cart[{n}].variant: the guide's table says variant_id" for n in (0, 1)], id="checkout-variant",
    ),
    pytest.param(
        schema.USER_CHANGES, GUIDE_USER, ["user_id: the guide's table leaves it out of an update"],
        id="update-user-with-user_id",
    ),
]


@pytest.mark.parametrize(("spec", "sample", "expected"), GUIDE_CONTRADICTIONS)
def test_guide_samples_that_break_their_tables_are_taken_with_warnings(
    spec: Any, sample: dict[str, Any], expected: list[str]
) -> None:
    assert spec.fast_check(sample) is False  # a warning is only written by the general path
    assert warnings_of(spec, sample) == expected
    assert validate_partial(spec, sample) == (validate(spec, sample), [])


def test_what_neither_the_guide_nor_its_samples_send_stays_an_error() -> None:
    no_variant = {"product_id": "p1", "quantity": 1, "unit_price": 24}
    checkout = {"type": "checkout", "subtype": "started", "cart": [no_variant], "cart_link": "/cart"}
    assert errors_of(schema.EVENT, checkout) == ["cart[0]: needs variant_id or variant"]
    # Outside the checkout sample's cart, "variant" is no member: the cart tables say variant_id.
    cart = {**checkout, "type": "cart", "subtype": "update", "cart": [{**no_variant, "variant": "v1"}]}
    assert errors_of(schema.EVENT, cart) == [
        "cart[0].variant: unknown field; did you mean 'variant_id'?",
        "cart[0].variant_id: required field missing",
    ]
    # The Authentication sample illustrates signing: a user without user_id is no user.
    assert errors_of(schema.USER, {"name": "Spongebob", "email": "pineapple@underthe.sea"}) == [
        "name: unknown field; did you mean 'last_name'?",
        "user_id: required field missing",
    ]
    # A member only a sample sends is never suggested for a typo: the table's members are.
    banner = {"type": "click", "subtype": "banner", "banner_id": "b1", "category": "c1"}
    assert errors_of(schema.EVENT, banner) == [
        "category: unknown field; expected one of banner_id, subtype, type"
    ]
    # A warned member is still checked for its type.
    assert errors_of(schema.USER, {"user_id": "u1", "first_name": 7}) == [
        "first_name: expected a string, got 7"
    ]


def test_a_warning_and_an_error_together_raise_the_error_alone() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_with_warnings(schema.USER, {"user_id": "", "email": "a@b.c"})
    assert [str(error) for error in caught.value.errors] == [
        "user_id: expected an id (a non-empty string or an integer), got ''"
    ]
    assert not any(isinstance(error, schema.FieldWarning) for error in caught.value.errors)


def test_a_null_first_name_is_missing_and_warned() -> None:
    value, warnings = validate_with_warnings(schema.USER, {"user_id": "u1", "first_name": None})
    assert value == {"user_id": "u1"}
    assert warnings == [schema.FieldWarning("first_name", schema.TABLE_SAYS_REQUIRED)]


def test_valid_data_the_table_agrees_with_has_no_warnings_and_is_not_copied() -> None:
    assert validate_with_warnings(schema.USER, {"user_id": "u1", "first_name": "Ann"})[1] == []
    batch = schema.batch_of(schema.USER)
    data = {"batch": [{"user_id": "u1", "first_name": "Ann"}, {"user_id": "u2"}]}
    assert [str(w) for w in validate_with_warnings(batch, data)[1]] == [
        "batch[1].first_name: the guide's table says required"
    ]


def test_a_repeated_id_must_be_the_paths() -> None:
    users = schema.RESOURCES["users"]
    assert users.repeated_id_errors({"user_id": "u1"}, {"user_id": "u1", "first_name": "J"}) == []
    assert users.repeated_id_errors({"user_id": "u1"}, {"first_name": "J"}) == []
    (error,) = users.repeated_id_errors({"user_id": "u1"}, {"user_id": "u2"})
    assert error.path == "user_id"
    assert "'u2'" in error.message and "'u1'" in error.message


def test_event_user_needs_an_identity() -> None:
    assert errors_of(schema.EVENT_ENVELOPE, {"user": {"user_id": None}, "event": {"type": "login"}}) == [
        "user: needs user_id or anonymous_id"
    ]


def test_backend_objects_accept_the_guide_samples() -> None:
    assert validate(schema.PRODUCT, GUIDE_PRODUCT) is GUIDE_PRODUCT
    user = validate(schema.USER, GUIDE_USER)
    assert user["timestamp"] == "2018-04-05 02:29:04Z"  # converted to UTC
    changes = {key: value for key, value in GUIDE_PRODUCT.items() if key not in ("product_id", "variant_id")}
    assert validate(schema.PRODUCT_CHANGES, changes) is changes
    order = {"order_id": "o123", "user_id": "u456", "cart": GUIDE_CART, "timestamp": "2018-04-04 23:29:04Z"}
    assert validate(schema.ORDER, order)["order_status"] == "completed"
    assert validate(schema.ORDER_STATUS_CHANGE, {"order_status": "cancelled"})
    category = {"category_id": "summer-jeans", "name": "Summer Jeans", "link": "/categories/summer-jeans"}
    assert validate(schema.CATEGORY, category) is category


def test_backend_required_fields() -> None:
    assert errors_of(schema.PRODUCT, {"product_id": "p1", "variant_id": "v1"}) == [
        f"{name}: required field missing"
        for name in ("categories", "name", "price", "full_price", "stock", "photo_url", "link")
    ]
    assert errors_of(schema.ORDER_STATUS_CHANGE, {"order_status": "shipped"}) == [
        "order_status: expected one of 'completed', 'cancelled', got 'shipped'"
    ]
    assert errors_of(schema.PRODUCT, {**GUIDE_PRODUCT, "rating": 101}) == [
        "rating: must be at most 100, got 101"
    ]
    assert errors_of(schema.CATEGORY_CHANGES, {"category_id": "c1", "name": "C"})[0].startswith(
        "category_id: unknown field"
    )


def test_batches_hold_one_to_500_items() -> None:
    batch = schema.batch_of(schema.CATEGORY_KEY)
    assert validate(batch, {"batch": [{"category_id": str(i)} for i in range(500)]})
    assert errors_of(batch, {"batch": [{"category_id": "c"}] * 501}) == ["batch: at most 500 items, got 501"]
    assert errors_of(batch, {"batch": []}) == ["batch: needs at least 1 item(s), got 0"]
    assert errors_of(batch, {"batch": [{"category_id": "c"}, {"category_id": ""}]}) == [
        "batch[1].category_id: expected an id (a non-empty string or an integer), got ''"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("99,50", "expected a number, got '99,50'"),
        (True, "expected a number, got true"),
        (None, "expected a number, got null"),
        (float("nan"), "expected a finite number, got nan"),
        (Decimal("Infinity"), "expected a number, got Decimal('Infinity')"),
        (-1, "must be at least 0, got -1"),
    ],
)
def test_money_refusals(value: Any, message: str) -> None:
    item = {"product_id": "p", "variant_id": "v", "quantity": 1, "unit_price": value}
    assert errors_of(schema.CART_ITEM, item) == [f"unit_price: {message}"]


def test_normalization() -> None:
    item = {"product_id": 12, "variant_id": "v", "quantity": 2, "unit_price": Decimal("24.50")}
    assert validate(schema.CART_ITEM, item) == {
        "product_id": "12",
        "variant_id": "v",
        "quantity": 2,
        "unit_price": 24.5,
    }
    assert validate(schema.CART_ITEM, {**item, "unit_price": Decimal("24.00")})["unit_price"] == 24
    assert errors_of(schema.CART_ITEM, {**item, "product_id": True}) == [
        "product_id: expected an id (a non-empty string or an integer), got true"
    ]
    assert errors_of(schema.CART_ITEM, {**item, "quantity": 1.5}) == [
        "quantity: expected an integer, got 1.5"
    ]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2018, 4, 4, 23, 29, 4, tzinfo=timezone.utc), "2018-04-04 23:29:04Z"),
        (datetime(2018, 4, 4, 23, 29, 4, 276000), "2018-04-04 23:29:04.276Z"),  # naive means UTC
        (datetime(2018, 4, 4, 20, 29, 4, tzinfo=timezone(timedelta(hours=-3))), "2018-04-04 23:29:04Z"),
        ("2018-04-04T23:29:04Z", "2018-04-04 23:29:04Z"),
        ("2018-01-23 00:30:08.276Z", "2018-01-23 00:30:08.276Z"),
        ("2018-04-04 23:29:04-03:00", "2018-04-05 02:29:04Z"),
    ],
)
def test_timestamps_become_utc(moment: Any, expected: str) -> None:
    assert validate(schema.ORDER_DETAILS, {"cart": GUIDE_CART, "timestamp": moment})["timestamp"] == expected


@pytest.mark.parametrize(
    "clock_ns",
    [
        1_522_884_544_000_000_000,  # on the second: no milliseconds
        1_522_884_544_000_000_999,  # under a microsecond: still none
        1_522_884_544_000_001_000,  # one microsecond: ".000"
        1_522_884_544_276_999_999,
        1_522_884_544_999_999_999,
        1_522_884_545_000_000_000,  # the next second
        1_522_884_545_123_456_789,
    ],
)
def test_timestamp_now_is_format_timestamp_of_now(monkeypatch: pytest.MonkeyPatch, clock_ns: int) -> None:
    monkeypatch.setattr(schema.values.time, "time_ns", lambda: clock_ns)
    # What datetime.now(timezone.utc) makes of the same clock: microseconds, floored.
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=clock_ns // 1000)
    assert schema.timestamp_now() == schema.format_timestamp(moment)


def test_bad_timestamp() -> None:
    assert errors_of(schema.ORDER_DETAILS, {"cart": GUIDE_CART, "timestamp": "yesterday"}) == [
        "timestamp: expected an ISO-8601 date and time, got 'yesterday'"
    ]


def test_free_objects_take_any_json() -> None:
    profile = {"sex": "f", "tier": {"level": 3, "tags": ["a", None, 1.5]}}
    envelope = {"user": {"anonymous_id": "a", "profile": profile}, "event": {"type": "login"}}
    assert validate(schema.EVENT_ENVELOPE, envelope) is envelope
    envelope["user"]["profile"] = {"since": datetime(2020, 1, 1), "spent": Decimal("1.5"), "bad": object()}
    normalized, errors = validate_partial(schema.EVENT_ENVELOPE, envelope)
    assert normalized["user"]["profile"] == {"since": "2020-01-01 00:00:00Z", "spent": 1.5}
    assert [str(error) for error in errors] == ["user.profile.bad: expected a JSON value, got an object"]


def test_deeply_nested_free_objects_are_refused_not_crashed() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"k": deep}
    envelope = {"user": {"anonymous_id": "a", "profile": deep}, "event": {"type": "login"}}
    assert "nested too deeply" in str(errors_of(schema.EVENT_ENVELOPE, envelope))


# -- the compiled fast check must agree with the general validator -------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.sampled_from(["v1", "completed", "cancelled", "2018-04-04 23:29:04Z", "no-variants", ""]),
    st.decimals(places=2, allow_nan=False, allow_infinity=False),
)


def near_valid(spec: Any) -> st.SearchStrategy[Any]:
    """Values shaped like ``spec``, valid or a little wrong, to compare both code paths."""
    if isinstance(spec, schema.Object):
        members = {name: near_valid(member.spec) for name, member in spec.fields.items()}
        optional = {**members, "variant": json_scalars}
        return st.fixed_dictionaries({}, optional=optional)
    if isinstance(spec, schema.ListOf):
        return st.lists(near_valid(spec.item), max_size=3)
    if isinstance(spec, schema.FreeObject):
        return st.dictionaries(st.text(max_size=2), json_scalars, max_size=2)
    if isinstance(spec, schema.Tagged):
        # Some variant's members under some variant's tags, no tags, or unhashable ones (a list).
        no_tags, list_tags = (None,) * len(spec.tags), (["cart"],) * len(spec.tags)

        def tagged(value: dict[str, Any], tag_values: tuple[Any, ...]) -> dict[str, Any]:
            tags = {tag: tag_value for tag, tag_value in zip(spec.tags, tag_values, strict=True)}
            return {**value, **{tag: tag_value for tag, tag_value in tags.items() if tag_value is not None}}

        return st.builds(
            tagged,
            st.one_of(*(near_valid(variant) for variant in spec.variants.values())),
            st.sampled_from([*spec.variants, no_tags, list_tags]),
        )
    return json_scalars


def exact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)  # 1, 1.0 and True differ here


@pytest.mark.parametrize(
    "spec",
    [
        schema.PRODUCT_UPDATE_VARIANT,
        schema.ORDER_DETAILS,
        schema.PRODUCT,
        schema.USER,
        schema.USER_CHANGES,
        schema.ORDER,
        schema.EVENT,
        schema.PAGE_CONFIG,
    ],
    ids=["variant", "order_details", "product", "user", "user_changes", "order", "event", "page_config"],
)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fast_check_agrees_with_the_validator(
    spec: schema.Object | schema.Tagged, data: st.DataObject
) -> None:
    value = data.draw(near_valid(spec))
    problems: list[Any] = []  # errors and warnings: either one keeps data off the fast path
    normalized = spec.normalize(value, "", problems)
    already_normal = not problems and exact(normalized) == exact(value)
    assert spec.fast_check(value) == already_normal
