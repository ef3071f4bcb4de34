"""Finding products by their words: how a query's text becomes conditions
on the catalogue, alike on PostgreSQL and SQLite.

A query is text, never syntax. It is split at white space into terms, and a
product matches when each term is found in its name or its description,
whatever the case:

- a *word* (letters and decimal digits only, of a script that puts spaces between
  words) is found where a word starts with it: ``mok`` finds "Moka pot".
  The full-text indexes answer these: PostgreSQL's ``tsvector`` (column
  ``search_vector``, GIN) and SQLite's FTS5 table ``products_words``.
- any other term (punctuation in it, or Chinese, Japanese or Thai, which
  put no spaces between words) is found anywhere in the text: ``咖啡`` finds
  "电动咖啡壶", ``100%`` finds "100% cotton". Trigram indexes answer these:
  ``pg_trgm`` GIN indexes, and SQLite's FTS5 table ``products_text``
  (trigram tokenizer).

A product whose name holds every term ranks above one that needs its
description (``name_holds_all``). The migration 0006 builds the indexes.
:func:`plan_of` adds the filters and the order of a whole search.
"""
import functools
import re
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, column, func, literal_column, or_, select, table

from products.models import CatalogueSize, Product
from products.schemas import ProductSchema

# scripts written without spaces between words: CJK ideographs, kana, Thai,
# Lao, Khmer, Myanmar, Tibetan
UNSPACED = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]")
LIKE_SPECIAL = re.compile(r"([\\%_])")
# the shortest term SQLite's trigram index finds by itself (shorter: LIKE, a scan)
TRIGRAM = 3


@dataclass(frozen=True)
class Terms:
    words: tuple  # found at a word's start
    texts: tuple  # found anywhere

    def __bool__(self):
        return bool(self.words or self.texts)


def terms_of(query):
    """The terms of a query's text, each once, in lower case."""
    words, texts = [], []
    for term in dict.fromkeys(query.lower().split()):
        (words if is_word(term) else texts).append(term)
    return Terms(tuple(words), tuple(texts))


def is_word(term):
    # letters and decimal digits only: what both databases' word parsers keep
    # whole ("½" is a digit to isalnum, and no word to PostgreSQL)
    return (all(char.isalpha() or char.isdecimal() for char in term)
            and not UNSPACED.search(term))


def like_pattern(term):
    """A LIKE pattern finding ``term`` anywhere, its wildcards escaped."""
    return "%" + LIKE_SPECIAL.sub(r"\\\1", term) + "%"


def fts5_phrase(term):
    """``term`` as an FTS5 string: inside double quotes, nothing is syntax."""
    return '"' + term.replace('"', '""') + '"'


class PostgresqlSearch:
    """Words through the tsvector, other text through ILIKE (pg_trgm)."""

    vector = literal_column("products.search_vector")
    config = literal_column("'simple'::regconfig")  # words as written: no language's stems

    def shape(self, terms):
        return bool(terms.words), len(terms.texts)

    def values(self, terms):
        # the words are letters and digits only: nothing in them is tsquery syntax
        return {"words": " & ".join(f"{word}:*" for word in terms.words),
                "name_words": " & ".join(f"{word}:*A" for word in terms.words),  # A: the name
                **{f"text_{n}": like_pattern(term) for n, term in enumerate(terms.texts)}}

    def matches(self, shape):
        has_words, texts = shape
        conditions = [or_(Product.name.ilike(bindparam(f"text_{n}"), escape="\\"),
                          Product.description.ilike(bindparam(f"text_{n}"), escape="\\"))
                      for n in range(texts)]
        if has_words:
            conditions.append(self._vector_matches("words"))
        return conditions

    def name_holds_all(self, shape):
        has_words, texts = shape
        conditions = [Product.name.ilike(bindparam(f"text_{n}"), escape="\\")
                      for n in range(texts)]
        if has_words:
            conditions.append(self._vector_matches("name_words"))
        return and_(*conditions)

    def _vector_matches(self, name):
        return self.vector.op("@@")(func.to_tsquery(self.config, bindparam(name)))


class SqliteSearch:
    """Words through products_words, other text through products_text (or
    LIKE, for text shorter than a trigram)."""

    def shape(self, terms):
        return (bool(terms.words), bool(self._long(terms.texts)), len(self._short(terms.texts)),
                len(terms.texts))

    def values(self, terms):
        words = " AND ".join(fts5_phrase(word) + "*" for word in terms.words)
        return {"words": words, "name_words": f"name : ({words})",
                "long_texts": " AND ".join(map(fts5_phrase, self._long(terms.texts))),
                **{f"short_{n}": like_pattern(term)
                   for n, term in enumerate(self._short(terms.texts))},
                **{f"text_{n}": like_pattern(term) for n, term in enumerate(terms.texts)}}

    def matches(self, shape):
        has_words, has_long_texts, short_texts, _ = shape
        conditions = [self._in_fts("products_words", "words")] if has_words else []
        if has_long_texts:
            conditions.append(self._in_fts("products_text", "long_texts"))
        conditions += [or_(Product.name.like(bindparam(f"short_{n}"), escape="\\"),
                           Product.description.like(bindparam(f"short_{n}"), escape="\\"))
                       for n in range(short_texts)]
        return conditions

    def name_holds_all(self, shape):
        has_words, _, _, texts = shape
        conditions = [self._in_fts("products_words", "name_words")] if has_words else []
        conditions += [Product.name.like(bindparam(f"text_{n}"), escape="\\")
                       for n in range(texts)]
        return and_(*conditions)

    @staticmethod
    def _long(texts):
        return [term for term in texts if len(term) >= TRIGRAM]

    @staticmethod
    def _short(texts):
        return [term for term in texts if len(term) < TRIGRAM]

    @staticmethod
    def _in_fts(name, parameter):
        fts = table(name, column("rowid"))
        # "<table> MATCH ?": the query is one bound string
        return Product.id.in_(
            select(fts.c.rowid).where(literal_column(name).op("MATCH")(bindparam(parameter))))


SEARCH_OF_DIALECT = {"postgresql": PostgresqlSearch(), "sqlite": SqliteSearch()}

# a search's orders; id breaks ties, so that pages neither repeat nor skip
ORDERS = {
    "id": [Product.id],
    "newest": [Product.id.desc()],  # ids are given in the order products are added
    "price": [Product.price, Product.id],
    "-price": [Product.price.desc(), Product.id.desc()],
    "name": [func.lower(Product.name), Product.id],
}
FILTERS = {
    "category": lambda: Product.category == bindparam("category"),
    "min_price": lambda: Product.price >= bindparam("min_price", type_=Product.price.type),
    "max_price": lambda: Product.price <= bindparam("max_price", type_=Product.price.type),
}
ACTIVE = Product.deleted_at.is_(None)
# rows of what the answer holds, not ORM objects: a page is read, never changed
ANSWERED = [Product.__table__.c[name] for name in ProductSchema().fields]


@dataclass(frozen=True)
class Plan:
    """The statements of a search of one shape, built once with bind
    parameters (building and keying a statement costs about what running
    one does)."""
    page: object  # the page's products, each with ``total``, the count of every match
    count: object  # the count alone, for a page past the last match


def plan_of(query, dialect):
    """``(plan, parameters)`` of a search (``query``: a loaded
    common.schemas.CatalogueQuerySchema) on a database of ``dialect``."""
    terms = terms_of(query.get("q", ""))
    words = SEARCH_OF_DIALECT[dialect]
    shape = words.shape(terms) if terms else None
    filters = tuple(name for name in FILTERS if name in query)
    sort = query.get("sort", "relevance" if terms else "id")
    parameters = {**(words.values(terms) if terms else {}),
                  **{name: query[name] for name in (*filters, "after") if name in query},
                  "limit": query["limit"], "offset": query["offset"]}
    return _plan(dialect, shape, filters, sort, "after" in query), parameters


@functools.lru_cache(maxsize=1024)
def _plan(dialect, shape, filters, sort, keyset):
    words = SEARCH_OF_DIALECT[dialect]
    conditions = [*(words.matches(shape) if shape else []),
                  *(FILTERS[name]() for name in filters)]
    if sort == "relevance" and shape:
        order = [words.name_holds_all(shape).desc(), Product.id.desc()]
    else:
        order = ORDERS.get(sort, ORDERS["id"])  # relevance without words: id order
    count = (select(func.count()).where(ACTIVE, *conditions) if conditions
             else select(CatalogueSize.products))  # the whole catalogue's size is kept
    # The page and its total in one statement, so one snapshot answers both:
    # words are matched in the table, so the pass that chooses the page
    # counts too; filters alone are counted from an index (an uncorrelated
    # subquery, run once).
    total = func.count().over() if shape else count.correlate(None).scalar_subquery()
    after = [Product.id > bindparam("after")] if keyset else []  # the total counts all pages
    page = (select(*ANSWERED, total.label("total")).where(ACTIVE, *conditions, *after)
            .order_by(*order).limit(bindparam("limit")).offset(bindparam("offset")))
    return Plan(page=page, count=count)
