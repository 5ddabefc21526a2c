rampart_fuzzer(rampart_dns_wire_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/dns_wire_fuzz.cpp rampart::dns)
