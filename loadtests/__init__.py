"""Load tests and benchmarks, each a script run by hand (loadtests/README.md); not part of the test suite."""
