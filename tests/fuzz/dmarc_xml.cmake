# Fuzz harness for the DMARC aggregate report reader (sidecar/dmarc/parse): arbitrary bytes must
# never crash, hang, leak or pass the limits, and every string it returns is clean UTF-8.
rampart_fuzzer(rampart_dmarc_xml_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/dmarc_xml_fuzz.cpp rampart::dmarc)
