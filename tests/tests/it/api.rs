//! API tests: the real server on port 0 against a real database.
