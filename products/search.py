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
:func:`where_and_order` adds the filters and the order of a whole search.
"""
import re
from dataclasses import dataclass

from sqlalchemy import and_, column, func, literal_column, or_, select, table

from products.models import Product

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
    vector = literal_column("products.search_vector")
    config = literal_column("'simple'::regconfig")  # words as written: no language's stems

    def matches(self, terms):
        conditions = [
            or_(Product.name.ilike(pattern, escape="\\"),
                Product.description.ilike(pattern, escape="\\"))
            for pattern in map(like_pattern, terms.texts)]
        if terms.words:
            conditions.append(self._vector_matches(terms.words, ""))
        return and_(*conditions)

    def name_holds_all(self, terms):
        conditions = [Product.name.ilike(like_pattern(term), escape="\\")
                      for term in terms.texts]
        if terms.words:
            conditions.append(self._vector_matches(terms.words, "A"))  # weight A: the name
        return and_(*conditions)

    def _vector_matches(self, words, weight):
        # the words are letters and digits only: nothing in them is tsquery syntax
        query = " & ".join(f"{word}:*{weight}" for word in words)
        return self.vector.op("@@")(func.to_tsquery(self.config, query))


class SqliteSearch:
    def matches(self, terms):
        conditions = []
        if terms.words:
            conditions.append(self._in_fts(
                "products_words", " AND ".join(fts5_phrase(word) + "*" for word in terms.words)))
        long_texts = [term for term in terms.texts if len(term) >= TRIGRAM]
        if long_texts:
            conditions.append(self._in_fts(
                "products_text", " AND ".join(map(fts5_phrase, long_texts))))
        conditions += [
            or_(Product.name.like(pattern, escape="\\"),
                Product.description.like(pattern, escape="\\"))
            for pattern in map(like_pattern, (t for t in terms.texts if len(t) < TRIGRAM))]
        return and_(*conditions)

    def name_holds_all(self, terms):
        conditions = []
        if terms.words:
            conditions.append(self._in_fts("products_words", "name : (" + " AND ".join(
                fts5_phrase(word) + "*" for word in terms.words) + ")"))
        conditions += [Product.name.like(like_pattern(term), escape="\\")
                       for term in terms.texts]
        return and_(*conditions)

    @staticmethod
    def _in_fts(name, query):
        fts = table(name, column("rowid"))
        # "<table> MATCH ?": the query is one bound string
        return Product.id.in_(
            select(fts.c.rowid).where(literal_column(name).op("MATCH")(query)))


SEARCH_OF_DIALECT = {"postgresql": PostgresqlSearch(), "sqlite": SqliteSearch()}

# a search's orders; id breaks ties, so that pages neither repeat nor skip
ORDERS = {
    "id": [Product.id],
    "newest": [Product.id.desc()],  # ids are given in the order products are added
    "price": [Product.price, Product.id],
    "-price": [Product.price.desc(), Product.id.desc()],
    "name": [func.lower(Product.name), Product.id],
}


def where_and_order(query, dialect):
    """``(conditions, order)`` of a search (``query``: a loaded
    common.schemas.CatalogueQuerySchema) on a database of ``dialect``: what
    its products meet besides being in the catalogue, and their order."""
    terms = terms_of(query.get("q", ""))
    words = SEARCH_OF_DIALECT[dialect]
    conditions = [words.matches(terms)] if terms else []
    if "category" in query:
        conditions.append(Product.category == query["category"])
    if "min_price" in query:
        conditions.append(Product.price >= query["min_price"])
    if "max_price" in query:
        conditions.append(Product.price <= query["max_price"])
    if "after" in query:
        conditions.append(Product.id > query["after"])
    sort = query.get("sort", "relevance" if terms else "id")
    if sort == "relevance" and terms:
        return conditions, [words.name_holds_all(terms).desc(), Product.id.desc()]
    return conditions, ORDERS.get(sort, ORDERS["id"])  # relevance without words: id order
