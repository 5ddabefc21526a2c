// The unit-test program's entry point (doctest). Test cases live in *_test.cpp beside it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
