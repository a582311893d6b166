#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "tests/helpers.h"

std::string ctxbench::testing::ctxbench_binary() { return CTXBENCH_BINARY; }
