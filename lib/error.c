/*
 * Names and messages of sluice's error codes, generated from the one
 * SLUICE_ERRNO_MAP list in sluice.h so they cannot fall out of step.
 */
#include "sluice/sluice.h"

#include "version.h"

static const char *const err_names[] = {
#define XX(name, msg) #name,
    SLUICE_ERRNO_MAP(XX)
#undef XX
};

static const char *const err_messages[] = {
#define XX(name, msg) msg,
    SLUICE_ERRNO_MAP(XX)
#undef XX
};

const char *
sluice_errname(sluice_err err)
{
    if ((unsigned)err >= (unsigned)SLUICE_E_COUNT_)
        return "UNKNOWN";
    return err_names[err];
}

const char *
sluice_strerror(sluice_err err)
{
    if ((unsigned)err >= (unsigned)SLUICE_E_COUNT_)
        return "unknown error";
    return err_messages[err];
}

const char *
sluice_version(void)
{
    return SLUICE_VERSION;
}
