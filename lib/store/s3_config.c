/*
 * The S3 store's settings: the bucket and prefix of s3://BUCKET[/PREFIX],
 * credentials, region and endpoint from the options and the AWS_*
 * environment, the addressing (path-style or virtual-hosted) and so the
 * URL objects go to; and the spool directory bodies wait in.
 */
#include "s3.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX_MAX 512

static bool
bucket_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* Split s3://BUCKET[/PREFIX] and check both parts. */
static sluice_err
parse_location(sl_store *s, const char *location)
{
    sl_s3_store *ss = sl_s3_state(s);
    const char *p = location + strlen("s3://");
    size_t blen = strcspn(p, "/");
    if (blen == 0 || blen > 255)
        return sl_store_fail(s, SLUICE_EINVAL,
                             "--store %s: want s3://BUCKET[/PREFIX]", location);
    for (size_t i = 0; i < blen; i++)
        if (!bucket_char(p[i]))
            return sl_store_fail(s, SLUICE_EINVAL,
                                 "--store %s: a bucket name is letters, "
                                 "digits, '.', '-' and '_'",
                                 location);
    ss->bucket = sl_strndup(p, blen);
    p += blen;
    if (*p == '/')
        p++;
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    ss->prefix = sl_strndup(p, plen);
    if (!ss->bucket || !ss->prefix)
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    if (plen > PREFIX_MAX || !sl_utf8_valid(p, plen, NULL))
        return sl_store_fail(s, SLUICE_EINVAL,
                             "--store %s: the prefix must be UTF-8, at most "
                             "%d bytes",
                             location, PREFIX_MAX);
    /* Segments as keys have them: not empty, not . or .., no controls. */
    for (const char *seg = ss->prefix; plen > 0 && *seg;) {
        size_t len = strcspn(seg, "/");
        bool dots = (len == 1 && seg[0] == '.') ||
                    (len == 2 && seg[0] == '.' && seg[1] == '.');
        bool control = false;
        for (size_t i = 0; i < len; i++)
            control |= (unsigned char)seg[i] < 0x20 || seg[i] == 0x7f;
        if (len == 0 || dots || control)
            return sl_store_fail(s, SLUICE_EINVAL,
                                 "--store %s: the prefix has an empty, . "
                                 "or .. segment, or a control byte",
                                 location);
        seg += len;
        if (*seg == '/')
            seg++;
    }
    return SLUICE_OK;
}

static bool
ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Credentials, region and endpoint from the options and the environment,
 * and the URL objects go to. */
static sluice_err
configure_access(sl_store *s, const sl_store_opts *opts)
{
    sl_s3_store *ss = sl_s3_state(s);
    /* The credentials are found now, so that a store without them fails
     * at open, in one line saying where it looked. */
    if (!(ss->creds = sl_aws_chain_new()))
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    sl_aws_creds creds;
    char why[400];
    sluice_err err = sl_aws_chain_get(ss->creds, &creds, why, sizeof why);
    memset(&creds, 0, sizeof creds);
    if (err != SLUICE_OK)
        return sl_store_fail(s, err, "store %s: %s", s->location, why);
    char region_buf[64];
    const char *region = "us-east-1";
    if (sl_aws_region(region_buf, sizeof region_buf))
        region = region_buf;
    size_t rlen = strlen(region);
    if (rlen > 40 ||
        strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != rlen)
        return sl_store_fail(s, SLUICE_EINVAL,
                             "store %s: the region '%.40s' is not a region "
                             "name",
                             s->location, region);
    ss->region = sl_strdup(region);
    if (!ss->region)
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
    const char *ca = sl_env("AWS_CA_BUNDLE");
    if (ca && !(ss->ca_bundle = sl_strdup(ca)))
        return sl_store_fail(s, SLUICE_ENOMEM, "out of memory");

    /* The endpoint. */
    const char *what = "--s3-endpoint";
    const char *endpoint =
        opts->s3_endpoint && *opts->s3_endpoint ? opts->s3_endpoint : NULL;
    if (!endpoint && (endpoint = sl_env("AWS_ENDPOINT_URL_S3")))
        what = "AWS_ENDPOINT_URL_S3";
    if (!endpoint && (endpoint = sl_env("AWS_ENDPOINT_URL")))
        what = "AWS_ENDPOINT_URL";
    char aws[128];
    if (!endpoint) {
        sl_fmt(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
        endpoint = aws;
        what = "the endpoint";
    }
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    char *query = NULL;
    err = SLUICE_OK;
    if (!u) {
        err = sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        err = sl_store_fail(s, SLUICE_EINVAL,
                            "store %s: %s '%.200s' is not an http or https "
                            "URL without a query",
                            s->location, what, endpoint);
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    size_t path_len = path ? strlen(path) : 0;
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    bool is_aws = ends_with_ci(host, ".amazonaws.com") ||
                  ends_with_ci(host, ".amazonaws.com.cn");
    /* A bucket that is not a DNS label (dots break the certificate's
     * wildcard) is addressed in the path, as the AWS SDKs do. */
    bool dns_bucket = strspn(ss->bucket, "abcdefghijklmnopqrstuvwxyz"
                                         "0123456789-") == strlen(ss->bucket);
    bool path_style = opts->s3_path_style == 1 ||
                      (opts->s3_path_style < 0 && (!is_aws || !dns_bucket));
    sl_buf b;
    sl_buf_init(&b);
    int rc = sl_buf_printf(&b, "%s://%s%s%s", scheme, host, port ? ":" : "",
                           port ? port : "");
    ss->endpoint = rc == 0 ? sl_strdup(b.data) : NULL;
    sl_buf_clear(&b);
    rc |= sl_buf_printf(&b, "%s://%s%s%s%s%s%.*s/", scheme,
                        path_style ? "" : ss->bucket, path_style ? "" : ".",
                        host, port ? ":" : "", port ? port : "", (int)path_len,
                        path ? path : "");
    if (path_style)
        rc |= sl_s3_uri_encode(&b, ss->bucket) | sl_buf_putc(&b, '/');
    if (ss->prefix[0])
        rc |= sl_s3_uri_encode(&b, ss->prefix) | sl_buf_putc(&b, '/');
    size_t n = strlen(region) + 16;
    ss->sigv4 = sl_malloc(n);
    if (rc != 0 || !ss->endpoint || !ss->sigv4) {
        sl_buf_free(&b);
        err = sl_store_fail(s, SLUICE_ENOMEM, "out of memory");
        goto out;
    }
    sl_fmt(ss->sigv4, n, "aws:amz:%s:s3", region);
    ss->object_base = b.data; /* the buffer's memory is ours now */
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return err;
}

sluice_err
sl_s3_configure(sl_store *s, const char *location, const sl_store_opts *opts)
{
    sluice_err err = parse_location(s, location);
    return err != SLUICE_OK ? err : configure_access(s, opts);
}

/* SPOOL/sluice-spool-UID/ (ours alone), and this run's directory in it:
 * made 0700, and refused if another user owns it. */
sluice_err
sl_s3_open_spool(sl_store *s, const char *dir)
{
    sl_s3_store *ss = sl_s3_state(s);
    const char *root = dir && *dir ? dir : sl_env("TMPDIR");
    if (!root)
        root = "/tmp";
    if (dir && *dir && mkdir(root, 0700) != 0 && errno != EEXIST)
        return sl_s3_errno_fail(s, "cannot create the spool", root, errno);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return sl_s3_errno_fail(s, "cannot open the spool", root, errno);
    char name[48];
    sl_fmt(name, sizeof name, "sluice-spool-%lu", (unsigned long)geteuid());
    if (mkdirat(root_fd, name, 0700) != 0 && errno != EEXIST) {
        int saved = errno;
        close(root_fd);
        return sl_s3_errno_fail(s, "cannot write in the spool", root, saved);
    }
    ss->spool_fd =
        openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(root_fd);
    if (ss->spool_fd < 0)
        return sl_s3_errno_fail(s, "cannot open the spool", root, saved);
    struct stat sb;
    if (fstat(ss->spool_fd, &sb) != 0 || sb.st_uid != geteuid())
        return sl_store_fail(s, SLUICE_EACCES,
                             "store %s: spool %s/%s belongs to another user",
                             s->location, root, name);
    int err = sl_run_dir_open(ss->spool_fd, &ss->run);
    if (err)
        return sl_s3_errno_fail(s, "cannot write in the spool", root, err);
    return SLUICE_OK;
}
