# Fuzz harness for the bounded JSON reader (core::json) and the postqueue -j / postcat readers of
# `rampart release` built on it: arbitrary bytes must never crash, hang, leak or pass the bounds.
rampart_fuzzer(rampart_json_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/json_fuzz.cpp rampart::core)
