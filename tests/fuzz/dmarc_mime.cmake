# Fuzz harness for dmarc::unpack() (issue 6): arbitrary bytes as a report file, a gzip, a zip or a
# message must never crash, hang, leak or pass the unpack limits.
rampart_fuzzer(rampart_dmarc_mime_fuzz ${CMAKE_CURRENT_SOURCE_DIR}/dmarc_mime_fuzz.cpp rampart::dmarc)
