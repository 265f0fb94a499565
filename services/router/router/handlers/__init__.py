"""The router's use cases, one function each, called by the API's endpoints and the
consumers: each opens its transaction (or takes the consumer's), reads through `db/`, decides
through `domain/`, and writes what the domain decided."""
