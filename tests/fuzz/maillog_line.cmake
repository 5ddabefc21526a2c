rampart_fuzzer(rampart_maillog_line_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/maillog_line_fuzz.cpp rampart::maillog)
