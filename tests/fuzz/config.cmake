# Fuzz harness for the rampart.toml parser (rampart_config): any bytes in, Result out, no crash.
rampart_fuzzer(rampart_config_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/config_fuzz.cpp rampart::config)
