/*
 * libFuzzer harness: CSV feeds (header, quoted fields, records over
 * several lines, meta columns) through the real feed code, every record
 * then through sl_record_prepare(). The properties are fuzz_feed()'s.
 */
#include "common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_feed(data, size, SLUICE_FORMAT_CSV, SLUICE_FORMAT_CSV);
    return 0;
}
