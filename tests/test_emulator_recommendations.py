"""Recommendation sanity on a small shop: what a visitor would see on the home and product pages."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from cue_front.emulator import RunningEmulator, run_emulator


def _product(pid: str, name: str, category: str, brand: str = "Acme", **changes: Any) -> dict[str, Any]:
    return {"product_id": pid, "variant_id": "v1", "categories": [category], "name": name, "brand": brand,
            "price": 10, "full_price": 10, "stock": 5, "photo_url": f"/img/{pid}.jpg",
            "link": f"/p/{pid}", **changes}


CATALOG = [
    _product("j1", "Blue Slim Jeans", "jeans", "Zayra", description="slim fit denim"),
    _product("j2", "Black Slim Jeans", "jeans", "Zayra", description="slim fit denim"),
    _product("j3", "Green Slim Jeans", "jeans", "Zayra", description="slim fit denim", stock=0),
    _product("j4", "Grey Slim Jeans", "jeans", "Zayra", description="slim fit denim", available=False),
    _product("s1", "White Shirt", "shirts"),
    _product("s2", "Blue Shirt", "shirts"),
    _product("h1", "Running Shoes", "shoes"),
    _product("h2", "Leather Shoes", "shoes"),
    _product("t1", "Oak Table", "tables"),
]


def _order(order_id: str, user_id: str, *lines: tuple[str, int]) -> dict[str, Any]:
    cart = [{"product_id": pid, "variant_id": "v1", "quantity": quantity, "unit_price": 10}
            for pid, quantity in lines]
    return {"order_id": order_id, "user_id": user_id, "cart": cart}


ORDERS = [
    _order("o1", "buyer1", ("j1", 1), ("h1", 1)),
    _order("o2", "buyer2", ("j1", 1), ("h1", 1)),
    _order("o3", "buyer3", ("j1", 1), ("s1", 1)),
    _order("o4", "buyer4", ("s2", 4)),
    _order("o5", "buyer5", ("j1", 1), ("j3", 1), ("j4", 1)),  # out of stock and unavailable
]


def load_shop(emulator: RunningEmulator) -> None:
    assert emulator.rest("POST", "/batch/products", {"batch": CATALOG}).status_code == 201
    assert emulator.rest("POST", "/batch/orders", {"batch": ORDERS}).status_code == 201


@pytest.fixture
def shop(emulator: RunningEmulator) -> RunningEmulator:
    load_shop(emulator)
    return emulator


def product_page(emulator: RunningEmulator, product_id: str, **visitor: str) -> dict[str, Any]:
    visitor = visitor or {"anonymous_id": "someone"}
    response = emulator.send_event({"type": "pageview", "subtype": "product", "product_id": product_id},
                                   **visitor)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def home_page(emulator: RunningEmulator, **visitor: str) -> dict[str, Any]:
    response = emulator.send_event({"type": "pageview", "subtype": "home"}, **visitor)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def ids(products: list[dict[str, Any]] | None) -> list[str]:
    return [item["product_id"] for item in products or []]


def test_the_product_bought_most_often_with_this_one_ranks_first(shop: RunningEmulator) -> None:
    related = product_page(shop, "j1")["related_product_skus"]

    assert ids(related) == ["h1", "s1"]


def test_with_no_co_purchases_related_falls_back_to_the_categorys_best_sellers(
    emulator: RunningEmulator,
) -> None:
    jeans = [_product(f"r{n}", f"Red Slim Jeans {n}", "jeans", description="red slim") for n in range(11)]
    plain = _product("k1", "Plain Trousers", "jeans", brand="Other", description="cotton twill")
    assert emulator.rest("POST", "/batch/products", {"batch": [*jeans, plain]}).status_code == 201
    sold = {"batch": [_order("o1", "u1", ("k1", 2))]}
    assert emulator.rest("POST", "/batch/orders", sold).status_code == 201

    answer = product_page(emulator, "r0")

    # The ten most like r0 are its similar products; the category's best seller, less like it, is related.
    assert ids(answer["similar_product_skus"]) == [f"r{n}" for n in range(1, 11)]
    assert ids(answer["related_product_skus"]) == ["k1"]


def test_a_best_seller_the_similar_list_shows_is_not_related_too(shop: RunningEmulator) -> None:
    answer = product_page(shop, "j2")

    assert ids(answer["similar_product_skus"]) == ["j1"]
    assert answer["related_product_skus"] is None


def test_bought_together_in_its_own_category_comes_first_and_leaves_the_similar_list(
    shop: RunningEmulator,
) -> None:
    before = product_page(shop, "j1")
    assert ids(before["similar_product_skus"]) == ["j2"]
    shop.rest("POST", "/orders", _order("o7", "buyer7", ("j1", 1), ("j2", 1)))

    after = product_page(shop, "j1")

    # j2, a pair of jeans bought once with j1, comes before shoes bought twice with it.
    assert ids(after["related_product_skus"]) == ["j2", "h1", "s1"]
    assert ids(after["similar_product_skus"]) == []


def test_similar_products_are_of_its_own_categories(emulator: RunningEmulator) -> None:
    catalog = [
        _product("c1", "Alpine Parka", "coats", description="warm recycled nylon, made to last"),
        _product("c2", "Wool Overcoat", "coats", description="boiled wool"),
        _product("l1", "Parka Lamp", "home", description="warm light, recycled nylon shade, made to last"),
        _product("n1", "Alpine Parka Too", "", description="warm recycled nylon"),
    ]
    catalog[3]["categories"] = []
    assert emulator.rest("POST", "/batch/products", {"batch": catalog}).status_code == 201

    # The lamp is much like the parka, in name and description: it is not a coat.
    assert ids(product_page(emulator, "c1")["similar_product_skus"]) == ["c2"]
    # A product without categories is compared with all.
    assert ids(product_page(emulator, "n1")["similar_product_skus"])[0] == "c1"


def test_with_nothing_related_the_list_is_null(shop: RunningEmulator) -> None:
    assert product_page(shop, "t1")["related_product_skus"] is None


def test_a_product_never_received_gets_an_answer_too(shop: RunningEmulator) -> None:
    product_page(shop, "s1", anonymous_id="a1")

    answer = product_page(shop, "not-in-the-catalog", anonymous_id="a1")

    assert answer == {"similar_product_skus": [], "related_product_skus": None,
                      "recent_product_skus": answer["recent_product_skus"]}
    assert ids(answer["recent_product_skus"]) == ["s1"]


def test_similar_products_share_name_brand_categories_and_description(emulator: RunningEmulator) -> None:
    catalog = [
        _product("j1", "Blue Slim Jeans", "jeans", "Zayra", description="slim fit denim"),
        _product("j2", "Black Jeans", "jeans", "Other", description="wide leg"),
        _product("j3", "Blue Jeans", "jeans", "Other", description="wide leg"),
        _product("j4", "Grey Jeans", "jeans", "Zayra", description="wide leg"),
        _product("j5", "Grey Jeans", "jeans", "Other", description="slim fit denim"),
        _product("s1", "Blue Slim Shirt", "shirts", "Zayra", description="slim fit denim"),
    ]
    assert emulator.rest("POST", "/batch/products", {"batch": catalog}).status_code == 201

    # A word of the name weighs most, then three of the description, then the brand; the shirt,
    # most like it of all, is no pair of jeans.
    assert ids(product_page(emulator, "j1")["similar_product_skus"]) == ["j3", "j5", "j4", "j2"]


def test_out_of_stock_and_unavailable_products_never_appear(shop: RunningEmulator) -> None:
    visitor = {"anonymous_id": "a-jeans-fan"}
    for pid in ("j3", "j4", "j1"):
        product_page(shop, pid, **visitor)

    pages = [product_page(shop, pid, **visitor) for pid in ("j1", "j2")] + [home_page(shop, **visitor)]

    shown = {pid for page in pages for products in page.values() if isinstance(products, list)
             for pid in ids(products)}
    assert shown and not shown & {"j3", "j4"}


def test_the_product_being_viewed_is_never_recommended(shop: RunningEmulator) -> None:
    product_page(shop, "j1", user_id="u1")
    product_page(shop, "j2", user_id="u1")

    answer = product_page(shop, "j1", user_id="u1")

    for name in ("similar_product_skus", "related_product_skus", "recent_product_skus"):
        assert "j1" not in ids(answer[name]), name
    assert ids(answer["recent_product_skus"]) == ["j2"]


def test_recently_viewed_is_newest_first_without_duplicates(shop: RunningEmulator) -> None:
    for pid in ("j1", "s1", "j1", "h1"):
        product_page(shop, pid, anonymous_id="a1")

    recent = home_page(shop, anonymous_id="a1")["recent_product_skus"]

    assert ids(recent) == ["h1", "j1", "s1"]
    assert all(item["variant_id"] == "v1" for item in recent)


def test_anonymous_history_follows_the_user_after_login(shop: RunningEmulator) -> None:
    product_page(shop, "s1", anonymous_id="a1")
    product_page(shop, "h1", anonymous_id="a1")
    assert home_page(shop, user_id="u1")["recent_product_skus"] == []

    assert shop.send_event({"type": "login"}, user_id="u1", anonymous_id="a1").status_code == 204

    assert ids(home_page(shop, user_id="u1")["recent_product_skus"]) == ["h1", "s1"]
    product_page(shop, "j2", anonymous_id="a1")  # the same browser, before the page knows the user
    assert ids(home_page(shop, user_id="u1")["recent_product_skus"]) == ["j2", "h1", "s1"]


def test_a_user_created_with_an_anonymous_id_gets_its_history(shop: RunningEmulator) -> None:
    product_page(shop, "s2", anonymous_id="a9")

    shop.rest("POST", "/users", {"user_id": "u9", "first_name": "Ann", "anonymous_id": "a9"})

    assert ids(home_page(shop, user_id="u9")["recent_product_skus"]) == ["s2"]


def test_cancelled_orders_stop_counting(shop: RunningEmulator) -> None:
    for order_id in ("o1", "o2"):
        assert shop.rest("PUT", f"/orders/{order_id}", {"order_status": "cancelled"}).status_code == 204

    assert ids(product_page(shop, "j1")["related_product_skus"]) == ["s1"]
    assert product_page(shop, "h2")["related_product_skus"] is None  # h1 is no best seller any more

    shop.rest("PUT", "/orders/o1", {"order_status": "completed"})
    assert ids(product_page(shop, "j1")["related_product_skus"]) == ["h1", "s1"]


def test_a_new_order_cancelled_at_creation_does_not_count(shop: RunningEmulator) -> None:
    shop.rest("POST", "/orders", {**_order("o9", "u1", ("t1", 1), ("s2", 1)), "order_status": "cancelled"})

    assert product_page(shop, "t1")["related_product_skus"] is None


def test_deleted_orders_and_products_stop_counting(shop: RunningEmulator) -> None:
    shop.rest("DELETE", "/products/h1")
    shop.rest("DELETE", "/batch/orders", {"batch": [{"order_id": "o3"}]})

    assert product_page(shop, "j1")["related_product_skus"] is None


def test_home_follows_the_visitors_categories_and_leaves_out_what_they_bought(shop: RunningEmulator) -> None:
    shop.rest("POST", "/orders", _order("o6", "u5", ("s1", 1)))
    product_page(shop, "j2", user_id="u5")

    related = ids(home_page(shop, user_id="u5")["related_product_skus"])

    assert related[:3] == ["s2", "j1", "j2"]  # shirts (bought: 5) before jeans (viewed: 1)
    assert "s1" not in related


def test_cart_and_wishlist_say_what_a_visitor_likes(shop: RunningEmulator) -> None:
    shop.send_event({"type": "cart", "subtype": "update", "cart_link": "/cart",
                     "cart": [{"product_id": "h2", "variant_id": "v1", "quantity": 1, "unit_price": 10}]},
                    anonymous_id="a3")
    shop.send_event({"type": "wishlist", "subtype": "add", "product_id": "t1"}, anonymous_id="a3")
    shop.send_event({"type": "wishlist", "subtype": "add", "product_id": "s1"}, anonymous_id="a3")
    shop.send_event({"type": "wishlist", "subtype": "remove", "product_id": "s1"}, anonymous_id="a3")

    related = ids(home_page(shop, anonymous_id="a3")["related_product_skus"])

    assert related[:3] == ["h1", "h2", "t1"]  # cart (3) over wishlist (2); s1 was taken off


def test_a_visitor_with_no_history_gets_the_best_sellers(shop: RunningEmulator) -> None:
    # j1 and s2 both sold 4 units: the tie goes to the smaller product id.
    assert ids(home_page(shop, anonymous_id="new")["related_product_skus"]) == ["j1", "s2", "h1", "s1"]


def test_banners_follow_the_visitors_categories(shop: RunningEmulator) -> None:
    banners = [
        {"banner_id": "b-shirts", "category_id": "shirts", "photo_url": "/b/shirts.jpg", "link": "/c/shirts"},
        {"banner_id": "b-jeans", "category_id": "jeans", "photo_url": "/b/jeans.jpg", "link": "/c/jeans",
         "name": "Jeans"},
        {"banner_id": "b-shoes", "category_id": "shoes", "kind": "sub", "photo_url": "/b/s.jpg",
         "link": "/c/s"},
    ]
    registered = requests.put(shop.url + "/_emulator/banners", json={"banners": banners}, timeout=10)
    assert registered.status_code == 200
    product_page(shop, "j2", anonymous_id="a1")

    fan, stranger = home_page(shop, anonymous_id="a1"), home_page(shop, anonymous_id="a2")

    assert [b["banner_id"] for b in fan["main_banners"]] == ["b-jeans", "b-shirts"]
    assert [b["banner_id"] for b in stranger["main_banners"]] == ["b-shirts", "b-jeans"]
    assert fan["main_banners"][0] == {"banner_id": "b-jeans", "name": "Jeans", "link": "/c/jeans",
                                      "photo_url": "/b/jeans.jpg"}
    assert [b["banner_id"] for b in fan["sub_banners"]] == ["b-shoes"]


def test_the_same_data_gives_the_same_answers(shop: RunningEmulator) -> None:
    def answers(emulator: RunningEmulator) -> list[dict[str, Any]]:
        return [product_page(emulator, pid, anonymous_id="a1") for pid in ("j1", "s2", "h2")] + [
            home_page(emulator, anonymous_id="a1")
        ]

    with run_emulator() as other:
        load_shop(other)
        assert answers(other) == answers(shop)


# -- the rules hold for any shop ----------------------------------------------------------------

_IDS = st.sampled_from([f"p{i}" for i in range(12)])
_SHOPS = st.fixed_dictionaries({
    "products": st.dictionaries(_IDS, st.tuples(
        st.sampled_from(["jeans", "shirts", "shoes"]),
        st.sampled_from(["Blue Jeans", "Red Shirt", "Blue Shoes", "Old Jeans"]),
        st.integers(min_value=0, max_value=3),  # stock
        st.booleans(),  # available
    ), min_size=1),
    "orders": st.lists(st.tuples(st.lists(_IDS, min_size=1, max_size=4, unique=True), st.booleans()),
                       max_size=8),
    "views": st.lists(_IDS, max_size=6),
})


@settings(max_examples=25, deadline=None)
@given(shop=_SHOPS)
def test_no_list_ever_shows_the_viewed_product_an_unrecommendable_one_a_duplicate_or_another_list_s(
    emulator_server: RunningEmulator, shop: dict[str, Any]
) -> None:
    emulator = emulator_server
    emulator.reset()
    products = [_product(pid, name, category, stock=stock, available=available)
                for pid, (category, name, stock, available) in shop["products"].items()]
    orders = [{**_order(f"o{index}", "buyer", *((pid, 1) for pid in cart)),
               "order_status": "completed" if completed else "cancelled"}
              for index, (cart, completed) in enumerate(shop["orders"])]
    assert emulator.rest("POST", "/batch/products", {"batch": products}).status_code == 201
    if orders:
        assert emulator.rest("POST", "/batch/orders", {"batch": orders}).status_code == 201
    recommendable = {item["product_id"] for item in products if item["stock"] > 0 and item["available"]}

    for viewed in [*shop["views"], None]:
        answer = home_page(emulator, user_id="buyer") if viewed is None else product_page(
            emulator, viewed, user_id="buyer")
        for name, products_shown in answer.items():
            if not name.endswith("product_skus"):
                continue
            shown = ids(products_shown)
            assert len(shown) == len(set(shown)) <= 10, name
            assert set(shown) <= recommendable, name
            assert viewed not in shown, name
        if viewed is not None:  # a product page's two lists share nothing
            assert not set(ids(answer["similar_product_skus"])) & set(ids(answer["related_product_skus"]))
