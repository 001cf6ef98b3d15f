/*
 * libFuzzer harness: JSON Lines feeds through the real feed code
 * (lib/source/jsonl.c over the line reader), every record then through
 * sl_record_prepare(). The properties are fuzz_feed()'s (common.c).
 */
#include "common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_feed(data, size, SLUICE_FORMAT_JSONL, SLUICE_FORMAT_JSONL);
    return 0;
}
