rampart_fuzzer(rampart_milter_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/milter_fuzz.cpp rampart::milter_core rampart::rules)
