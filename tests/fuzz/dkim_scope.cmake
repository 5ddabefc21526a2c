# Fuzz harness for the OpenDKIM sign prediction (core::dkim): opendkim.conf text and the tables it
# names, all carved from one input; parse_config and predict must never crash, hang or leak.
rampart_fuzzer(rampart_dkim_scope_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/dkim_scope_fuzz.cpp rampart::core)
