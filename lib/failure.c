/*
 * The error classes' names (failure.h), from the one list.
 */
#include "failure.h"

#include <string.h>

#include "sluice/sluice.h"

static const char *const class_names[SL_CLASS_COUNT_] = {
    NULL,
#define SL_CLASS_NAME_(name, text) text,
    SL_ERROR_CLASS_MAP(SL_CLASS_NAME_)
#undef SL_CLASS_NAME_
};

const char *
sl_error_class_name(sl_error_class cls)
{
    if ((unsigned)cls >= SL_CLASS_COUNT_)
        return NULL;
    return class_names[cls];
}

sl_error_class
sl_error_class_from_name(const char *name)
{
    for (int i = 1; name && i < SL_CLASS_COUNT_; i++)
        if (strcmp(class_names[i], name) == 0)
            return (sl_error_class)i;
    return SL_CLASS_NONE;
}

const char *
sluice_error_class_name(unsigned i)
{
    return i + 1 < SL_CLASS_COUNT_ ? class_names[i + 1] : NULL;
}
