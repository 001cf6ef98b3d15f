/*
 * libFuzzer harness: plain URL-a-line feeds through the real feed code,
 * every record then through sl_record_prepare(); with the small line
 * limit the format is detected from the input instead (any of the three).
 */
#include "common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_feed(data, size, SLUICE_FORMAT_LINES, SLUICE_FORMAT_AUTO);
    return 0;
}
