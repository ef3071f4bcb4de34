"""Searching the catalogue: the products service's search and categories,
with worker_factory and a real database (SQLite's FTS5 here, PostgreSQL's
tsvector and pg_trgm with SHOP_TEST_DATABASE=postgresql)."""
import pytest
from nameko.testing.services import worker_factory

from common.errors import InvalidInput
from products.search import Terms, terms_of
from products.service import ProductsService


@pytest.fixture
def service(db):
    return worker_factory(ProductsService, db=db("products"))


def add(service, name, price="10.00", description="", category=None):
    return service.create(name=name, price=price, description=description,
                          category=category)["id"]


def found(service, **query):
    return [product["id"] for product in service.search(**query)["items"]]


def test_a_query_is_split_into_words_and_text():
    assert terms_of("  Moka MOKA pot 100% 咖啡 a_b ") == Terms(
        words=("moka", "pot"), texts=("100%", "咖啡", "a_b"))
    assert not terms_of(" \t ")


def test_a_word_is_found_where_a_word_starts_with_it_in_any_case(service):
    moka = add(service, "Moka pot")
    add(service, "Kettle", description="Gooseneck")
    assert found(service, q="mok") == [moka]
    assert found(service, q="MOKA POT") == [moka]
    assert found(service, q="oka") == []  # not where a word starts
    assert found(service, q="moka kettle") == []  # every word must be found


def test_a_match_in_the_name_ranks_above_one_in_the_description_only(service):
    in_description = add(service, "Cup", description="Goes with the moka pot")
    in_name = add(service, "Moka pot")
    older_in_name = add(service, "Moka pot, small")
    assert found(service, q="moka") == [older_in_name, in_name, in_description]
    # a tie keeps the newest first
    assert found(service, q="moka pot")[-1] == in_description


def test_text_without_spaces_is_found_by_its_characters(service):
    kettle = add(service, "电动咖啡壶", price="39.00")
    mill = add(service, "コーヒーミル", description="手挽き")
    add(service, "Espresso cup")
    assert found(service, q="咖啡") == [kettle]
    assert found(service, q="壶") == [kettle]  # shorter than a trigram
    assert found(service, q="コーヒー") == [mill]
    assert found(service, q="挽き") == [mill]


@pytest.mark.parametrize("query", [
    "%", "_", "'", '"', "\\", "&", "|", "!", ":*", "(", ")", "a:*", "*", "^", "-", "+",
    "%_%", "' OR 1=1 --", '"unclosed', "a & b", "NEAR(a b)", "AND", "OR", "NOT", "{name}:",
    "name:", "\\%", "''", "100%", "½", "x²", "Straße", "ǅ", "\u0301", "٣",
])
def test_a_query_is_text_never_syntax(service, query):
    """Each finds exactly the product that holds it, never every product,
    and raises nothing."""
    holding = add(service, f"Widget {query} edition", description=f"says {query}")
    add(service, "Plain widget", description="Simple")
    add(service, "Other thing")
    result = service.search(q=query)
    assert [product["id"] for product in result["items"]] == [holding]
    assert result["total"] == 1


def test_a_renamed_product_is_found_by_its_new_name_and_a_deleted_one_not_at_all(service):
    product = add(service, "Moka pot", description="aluminium")
    service.update(product, {"name": "Stovetop brewer"})
    assert found(service, q="moka") == []
    assert found(service, q="stovetop") == [product]
    assert found(service, q="alu") == [product]
    service.delete(product)
    assert found(service, q="stovetop") == []
    assert service.search(q="stovetop")["total"] == 0


def test_filters_combine_with_words_and_with_each_other(service):
    cheap_pot = add(service, "Moka pot", price="20.00", category="kitchen")
    dear_pot = add(service, "Moka pot deluxe", price="80.00", category="kitchen")
    garden_pot = add(service, "Flower pot", price="15.00", category="garden")
    add(service, "Kettle", price="30.00", category="kitchen")
    assert found(service, category="kitchen", q="pot") == [dear_pot, cheap_pot]
    assert found(service, q="pot", max_price="20.00") == [garden_pot, cheap_pot]
    assert found(service, q="pot", min_price="20.00", max_price="80.00",
                 category="kitchen", sort="price") == [cheap_pot, dear_pot]
    assert found(service, category="garden") == [garden_pot]
    assert found(service, category="Kitchen") == []  # a category is its exact name
    assert found(service, min_price="1000.00") == []


def test_every_order_pages_without_repeating_or_skipping(service):
    names = ["banana", "Apple", "cherry", "apple pie", "Date"]
    prices = ["3.00", "1.00", "3.00", "2.00", "1.00"]
    ids = [add(service, name, price) for name, price in zip(names, prices)]
    expected = {
        "price": [ids[1], ids[4], ids[3], ids[0], ids[2]],
        "-price": [ids[2], ids[0], ids[3], ids[4], ids[1]],
        "name": [ids[1], ids[3], ids[0], ids[2], ids[4]],  # whatever the case
        "newest": ids[::-1],
    }
    for sort, order in expected.items():
        pages = [found(service, sort=sort, limit=2, offset=offset) for offset in (0, 2, 4)]
        assert sum(pages, []) == order, sort
        assert service.search(sort=sort, limit=2)["total"] == 5
    assert found(service) == ids  # no words, no sort: id order


def test_total_counts_every_match_not_the_page(service):
    for number in range(5):
        add(service, f"Moka pot {number}", category="kitchen")
    add(service, "Kettle", category="kitchen")
    page = service.search(q="moka", limit=2, offset=2)
    assert len(page["items"]) == 2 and page["total"] == 5
    assert service.search(q="moka", offset=10) == {"items": [], "total": 5}  # past the last
    assert service.search(category="kitchen", limit=1)["total"] == 6
    assert service.search(sort="name", limit=1)["total"] == 6
    # past the last match, whatever counts them: the words, a filter or the kept size
    assert service.search(category="kitchen", offset=6) == {"items": [], "total": 6}
    assert service.search(sort="price", offset=6) == {"items": [], "total": 6}
    assert service.search(q="moka", category="garden") == {"items": [], "total": 0}


def test_a_keyset_page_of_a_category(service):
    ids = [add(service, f"Pot {number}", category="kitchen") for number in range(4)]
    add(service, "Rake", category="garden")
    assert found(service, category="kitchen", after=ids[1]) == ids[2:]
    # the total counts every page, as a keyset page of the whole catalogue's does
    assert service.search(category="kitchen", after=ids[1], limit=1)["total"] == 4
    assert service.search(category="kitchen", after=ids[3]) == {"items": [], "total": 4}


@pytest.mark.parametrize("query, invalid", [
    ({"q": "x" * 201}, "q"),
    ({"q": "moka\x00"}, "q"),  # PostgreSQL's text cannot hold it
    ({"sort": "cheapest"}, "sort"),
    ({"sort": "price", "after": 3}, "after"),
    ({"q": "moka", "after": 3}, "after"),
    ({"min_price": "5.00", "max_price": "4.99"}, "min_price"),
    ({"min_price": "-1"}, "min_price"),
    ({"max_price": 5}, "max_price"),
    ({"category": ""}, "category"),
    ({"limit": 101}, "limit"),
])
def test_search_refuses_what_it_cannot_answer(service, query, invalid):
    with pytest.raises(InvalidInput) as error:
        service.search(**query)
    assert list(error.value.details) == [invalid]


def test_an_unknown_sort_names_the_allowed_ones(service):
    with pytest.raises(InvalidInput) as error:
        service.search(sort="cheapest")
    assert "relevance, newest, price, -price, name" in error.value.details["sort"][0]


def test_categories_count_the_products_in_the_catalogue_by_name(service):
    add(service, "Moka pot", category="kitchen")
    add(service, "Kettle", category="kitchen")
    add(service, "Rake", category="garden")
    gone = add(service, "Hoe", category="garden")
    add(service, "Gift card")
    moved = add(service, "Bucket", category="garden")
    service.delete(gone)
    service.update(moved, {"category": "outdoor"})
    assert service.categories() == {"items": [
        {"name": "garden", "count": 1}, {"name": "kitchen", "count": 2},
        {"name": "outdoor", "count": 1}]}
