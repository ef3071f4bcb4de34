"""The products service's logic, with worker_factory and a real database."""
from unittest.mock import call

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select

from common.errors import InvalidInput, NotFound
from products.models import Product
from products.schemas import ProductSchema
from products.service import ProductsService


@pytest.fixture
def service(db):
    return worker_factory(ProductsService, db=db("products"))


def make(service, name="Mug", price="9.50", **fields):
    return service.create(name=name, price=price, **fields)


def test_create_answers_the_product_with_an_exact_price(service):
    product = make(service, price="0.10", description="Blue")
    assert product["price"] == "0.10"
    assert product["name"] == "Mug" and product["description"] == "Blue"
    assert product["created_at"] == product["updated_at"]
    assert product["created_at"].endswith("+00:00")
    service.outbox.add.assert_called_once_with("product_created", product)


@pytest.mark.parametrize("fields, invalid", [
    ({"name": "", "price": "1.00"}, "name"),
    ({"name": "   ", "price": "1.00"}, "name"),
    ({"name": "x" * 201, "price": "1.00"}, "name"),
    ({"name": "Mug", "price": "0"}, "price"),
    ({"name": "Mug", "price": "1.001"}, "price"),
    ({"name": "Mug", "price": 1.5}, "price"),
    ({"name": "Mug", "price": "1.00", "category": ""}, "category"),
    ({"name": "Mug", "price": "1.00", "category": " "}, "category"),
    ({"name": "Mug", "price": "1.00", "category": "x" * 51}, "category"),
    ({"name": "Mu\x00g", "price": "1.00"}, "name"),
    ({"name": "Mug", "price": "1.00", "description": "\x00"}, "description"),
    ({"name": "Mug", "price": "1.00", "category": "a\x00"}, "category"),
])
def test_create_refuses_invalid_fields(service, fields, invalid):
    with pytest.raises(InvalidInput) as error:
        service.create(**fields)
    assert list(error.value.details) == [invalid]


def test_list_pages_in_id_order_with_the_total(service):
    ids = [make(service, name=f"P{n}")["id"] for n in range(5)]
    page = service.list(limit=2, offset=1)
    assert [item["id"] for item in page["items"]] == ids[1:3]
    assert page["total"] == 5


@pytest.mark.parametrize("limit", [1, 3, 4])
def test_every_page_is_the_catalogue_in_id_order_whichever_end_it_is_read_from(service, limit):
    ids = [make(service, name=f"P{n}")["id"] for n in range(11)]
    service.delete(ids[3])
    service.delete(ids[8])
    active = [product_id for product_id in ids if product_id not in (ids[3], ids[8])]
    for offset in range(len(active) + 2):
        page = service.list(limit=limit, offset=offset)
        assert [item["id"] for item in page["items"]] == active[offset:offset + limit], offset
        assert page["total"] == len(active)


def test_a_keyset_page_holds_the_products_after_the_given_id(service):
    ids = [make(service, name=f"P{n}")["id"] for n in range(6)]
    service.delete(ids[2])
    page = service.list(limit=2, after=ids[1])
    assert [item["id"] for item in page["items"]] == [ids[3], ids[4]]
    assert page["total"] == 5
    assert [item["id"] for item in service.list(limit=3, after=0)["items"]] == [
        ids[0], ids[1], ids[3]]
    assert service.list(after=ids[5])["items"] == []


def test_a_page_takes_an_offset_or_an_id_to_start_after_not_both(service):
    with pytest.raises(InvalidInput) as error:
        service.list(offset=1, after=1)
    assert list(error.value.details) == ["after"]


def test_a_product_deleted_twice_leaves_the_catalogue_once(service):
    first, second = make(service, name="A"), make(service, name="B")
    service.delete(first["id"])
    with pytest.raises(NotFound):
        service.delete(first["id"])
    assert service.list()["total"] == 1
    assert [item["id"] for item in service.list()["items"]] == [second["id"]]


@pytest.mark.parametrize("limit, offset", [(0, 0), (101, 0), (10, -1), ("x", 0)])
def test_list_refuses_bad_paging(service, limit, offset):
    with pytest.raises(InvalidInput):
        service.list(limit=limit, offset=offset)


def test_every_answer_holds_its_products_as_the_schema_dumps_them(service):
    made = [make(service, name="Kettle", price="12.00", category="kitchen"),
            make(service, name="Mug \u2615", price="0.05", description="Blue\nstoneware"),
            make(service, name="Lamp", price="99999.99", description="Mug-sized")]
    updated = service.update(made[2]["id"], {"price": "80.10", "category": "lights"})
    answered = [*made[:2], updated, service.get(made[0]["id"]), *service.list()["items"],
                *service.get_many([product["id"] for product in made]),
                *service.search(sort="price")["items"], *service.search(q="mug")["items"]]
    stored = service.db.session.scalars(select(Product))
    as_dumped = {product.id: ProductSchema().dump(product) for product in stored}
    assert {answer["id"] for answer in answered} == as_dumped.keys()
    for answer in answered:
        assert answer == as_dumped[answer["id"]]


def test_get_many_answers_the_known_products_in_one_call(service):
    first, second = make(service, name="A"), make(service, name="B")
    service.delete(second["id"])
    assert service.get_many([second["id"], 999, first["id"], first["id"]]) == [first]


def test_update_changes_only_the_given_fields(service):
    product = make(service)
    updated = service.update(product["id"], {"price": "8.00"})
    assert updated["price"] == "8.00" and updated["name"] == "Mug"
    assert updated["updated_at"] > product["updated_at"]
    assert service.outbox.add.call_args_list[-2:] == [
        call("product_changed", {**updated, "changed": ["price"]}),
        call("product_updated", {**updated, "changed": ["price"]})]


def test_a_category_change_is_announced_only_to_who_knows_categories(service):
    product = make(service, category="kitchen")
    assert product["category"] == "kitchen"
    service.outbox.add.reset_mock()
    updated = service.update(product["id"], {"category": None})
    assert updated["category"] is None
    # product_updated (0.2.0's consumers) cannot name the field, and they do not know it
    service.outbox.add.assert_called_once_with(
        "product_changed", {**updated, "changed": ["category"]})


@pytest.mark.parametrize("changes", [{}, {"price": None}, {"name": ""}, "price=1"])
def test_update_refuses_empty_or_invalid_changes(service, changes):
    product = make(service)
    with pytest.raises(InvalidInput):
        service.update(product["id"], changes)


def test_a_deleted_product_leaves_the_catalogue(service):
    product = make(service)
    service.delete(product["id"])
    service.outbox.add.assert_called_with("product_deleted", {"id": product["id"]})
    with pytest.raises(NotFound):
        service.get(product["id"])
    with pytest.raises(NotFound):
        service.update(product["id"], {"name": "Cup"})
    with pytest.raises(NotFound):
        service.delete(product["id"])
    assert service.list() == {"items": [], "total": 0}
