//! Black-box tests of the whole platform live in `tests/e2e`; their harness is the workspace's one test
//! harness, the `testkit` crate.
