/*
 * The CA certificates origins are verified against, checked before a run
 * touches anything (sluice_check_ca_file, sluice_check_ca_path), so that
 * a wrong --cacert or --capath is one line at the start rather than a
 * certificate error on every record.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "../util.h"
#include "sluice/sluice.h"

sluice_err
sluice_check_ca_file(const char *path, char *why, size_t size)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        sl_copy(why, size, strerror(errno));
        return SLUICE_EINVAL;
    }
    /* Whether it holds a PEM certificate, as OpenSSL reads a CA file for
     * libcurl: the first one is enough (a system bundle has a hundred and
     * more, and parsing them all costs tens of milliseconds a run). A
     * directory opens, and fails here as "no certificate". */
    X509 *cert = PEM_read_X509_AUX(fp, NULL, NULL, NULL);
    bool unreadable = ferror(fp) != 0;
    int read_errno = errno;
    fclose(fp);
    size_t certs = cert != NULL;
    X509_free(cert);
    ERR_clear_error();
    if (unreadable) {
        sl_copy(why, size, strerror(read_errno));
        return SLUICE_EINVAL;
    }
    if (certs == 0) {
        sl_copy(why, size, "no PEM certificate in it");
        return SLUICE_EINVAL;
    }
    return SLUICE_OK;
}

/* A name OpenSSL's hashed directory lookup reads: 8 hex digits, a dot,
 * a number ("5ad8a5d6.0"). */
static bool
hashed_name(const char *name)
{
    size_t i = 0;
    for (; i < 8; i++)
        if (!isxdigit((unsigned char)name[i]))
            return false;
    if (name[i++] != '.' || !isdigit((unsigned char)name[i]))
        return false;
    while (isdigit((unsigned char)name[i]))
        i++;
    return name[i] == '\0';
}

sluice_err
sluice_check_ca_path(const char *path, char *why, size_t size)
{
    char dir[4096];
    bool several = strchr(path, ':') != NULL, found = false;
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");
        if (len >= sizeof dir) {
            sl_copy(why, size, "a directory name too long");
            return SLUICE_EINVAL;
        }
        memcpy(dir, p, len);
        dir[len] = '\0';
        p += len + (p[len] == ':');
        if (!len)
            continue;
        DIR *d = opendir(dir);
        if (!d) {
            sl_fmt(why, size, "%s%s%s", several ? dir : "",
                   several ? ": " : "", strerror(errno));
            return SLUICE_EINVAL;
        }
        struct dirent *ent;
        while (!found && (ent = readdir(d)))
            found = hashed_name(ent->d_name);
        closedir(d);
    }
    if (!found) {
        sl_fmt(why, size,
               "no hashed certificate in %s (openssl rehash DIR makes them)",
               several ? "any of them" : "it");
        return SLUICE_EINVAL;
    }
    return SLUICE_OK;
}
