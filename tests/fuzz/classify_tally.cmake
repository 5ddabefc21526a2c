rampart_fuzzer(rampart_classify_tally_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/classify_tally_fuzz.cpp
  rampart::maillog rampart::rules)
target_compile_definitions(rampart_classify_tally_fuzz PRIVATE RAMPART_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
