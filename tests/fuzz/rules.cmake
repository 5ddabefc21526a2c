rampart_fuzzer(rampart_rules_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/rules_fuzz.cpp rampart::rules rampart::core)
