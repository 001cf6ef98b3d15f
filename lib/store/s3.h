/*
 * The S3 store's own header, shared by its files: store_s3.c (the
 * backend's operations), s3_config.c (settings and addressing),
 * s3_text.c (encoders), s3_request.c (what every request shares),
 * s3_judge.c (what an answer means), s3_probe.c (the check at open) and
 * s3_upload.c (the uploader thread).
 */
#ifndef SL_STORE_S3_H
#define SL_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <pthread.h>

#include "../aws/credentials.h"
#include "async.h"
#include "store.h"

/* What came back from S3, besides the status. */
typedef struct {
    sl_buf body;     /* the start of the body: an error's XML */
    char region[64]; /* x-amz-bucket-region, when S3 says */
} sl_s3_response;

typedef struct {
    int fd; /* the spool file, in the run's spool directory */
    char spool_name[24];
    EVP_MD_CTX *md5;
    char content_md5[32];     /* base64 of the MD5 */
    char checksum_sha256[48]; /* base64 of the SHA-256 */
    bool early;               /* judged at submit: no upload, status set */
    char *url;
    /* The PUT's headers; the session token's line, when there is one, is
     * the last, made again for each try (the credentials are renewed). */
    struct curl_slist *headers;
    struct curl_slist *token_line;
    CURL *easy; /* while uploading */
    uint64_t read_pos;
    unsigned tries;   /* uploads that failed and will be tried again */
    int64_t due_mono; /* when the next try may start */
    sl_s3_response resp;
    char curl_error[CURL_ERROR_SIZE];
} sl_s3_object;

typedef struct {
    char *bucket;
    char *prefix;      /* "" or PREFIX, without slashes at the ends */
    char *object_base; /* the URL of PREFIX/, encoded; a key follows */
    char *endpoint;    /* scheme://host[:port], for messages */
    char *sigv4;       /* "aws:amz:REGION:s3" */
    char *region;
    sl_aws_chain *creds; /* credentials.h: found once, renewed */
    char *ca_bundle;    /* $AWS_CA_BUNDLE, or NULL */
    unsigned concurrency;
    int spool_fd;   /* SPOOL/sluice-spool-UID/ */
    sl_run_dir run; /* this run's spool directory and its lock */
    uint64_t seq;
    bool curl_ready;
    CURLM *multi;
    pthread_t uploader;
    bool uploader_started;
    sl_async *async; /* the store's: submitted objects and results */
    /* The uploader's own (an object is on one list at a time, by next): */
    sl_object *wait_head, *wait_tail; /* to upload once due */
    sl_object *active;                /* uploading now */
    unsigned n_active;
    bool broken; /* a failure stopped the store: upload nothing more */
    char broken_msg[200];
    uint64_t rng;
} sl_s3_store;

static inline sl_s3_store *
sl_s3_state(sl_store *s)
{
    return s->state;
}

static inline sl_s3_object *
sl_s3_object_state(sl_object *o)
{
    return sl_object_state(o);
}

/* store_s3.c */

/* Fail with the store error a failed file operation on `path` is. */
sluice_err sl_s3_errno_fail(sl_store *s, const char *what, const char *path,
                            int err);
/* Let go of an object's upload state and spool file; the object stays. */
void sl_s3_object_clear(sl_object *o);

/* s3_config.c */

/* Bucket and prefix from `location`, credentials, region and endpoint
 * from opts and the environment, and the URL objects go to. */
sluice_err sl_s3_configure(sl_store *s, const char *location,
                           const sl_store_opts *opts);
/* SPOOL/sluice-spool-UID/ (ours alone), and this run's directory in it;
 * SPOOL is `dir`, else $TMPDIR, else /tmp. */
sluice_err sl_s3_open_spool(sl_store *s, const char *dir);

/* s3_text.c */

/* Append `s` URI-encoded as SigV4 wants an S3 path. 0, or -1. */
int sl_s3_uri_encode(sl_buf *b, const char *s);
/* Append `s` as a metadata value S3 keeps as sent. 0, or -1. */
int sl_s3_meta_encode(sl_buf *b, const char *s);
/* The origin's content type (may be NULL) made a safe header value. */
void sl_s3_content_type(char *dst, size_t size, const char *src);
/* The text of the first <tag>...</tag> in an XML body, or "". */
void sl_s3_xml_text(const char *body, const char *tag, char *dst, size_t size);
/* Base64 of `len` bytes into dst (at least 4 * ceil(len / 3) + 1). */
void sl_s3_base64(char *dst, const unsigned char *src, size_t len);
/* 64 hex digits to 32 bytes; false if they are not that. */
bool sl_s3_unhex_sha256(const char *hex, unsigned char out[32]);

/* s3_request.c */

/* Append a header line to a list; non-zero when out of memory. */
int sl_s3_slist_add(struct curl_slist **list, const char *line);
/* Forget what the last request captured in resp. */
void sl_s3_response_reset(sl_s3_response *resp);
/* The options every request to S3 shares: signing, timeouts, and the
 * capture of the answer in resp and of libcurl's message in errbuf
 * (CURL_ERROR_SIZE bytes). */
void sl_s3_setup_easy(const sl_s3_store *ss, const sl_aws_creds *creds,
                      CURL *e, const char *url, struct curl_slist *headers,
                      sl_s3_response *resp, char *errbuf);
/* Put the session token's line (if `creds` have a token) at the end of
 * *headers, in place of the one *line was; non-zero when out of memory. */
int sl_s3_token_line(struct curl_slist **headers, struct curl_slist **line,
                     const sl_aws_creds *creds);

/* s3_judge.c */

typedef enum {
    SL_S3_STORED, /* 2xx */
    SL_S3_AGAIN,  /* transient: upload again from the spool, later */
    SL_S3_RECORD, /* the body is suspect: the record is tried again */
    SL_S3_REJECT, /* this object can never be stored */
    SL_S3_FATAL   /* configuration: stop the run */
} sl_s3_verdict;

/* Judge a finished request; see s3_judge.c. */
sl_s3_verdict sl_s3_judge(const sl_s3_store *ss, CURLcode rc, long status,
                          const sl_s3_response *resp, const char *curl_error,
                          char *msg, size_t size, sluice_err *err);

/* s3_probe.c */

/* Check the bucket and credentials before any download. */
sluice_err sl_s3_probe(sl_store *s);

/* s3_upload.c */

/* Make the multi handle and start the uploader thread. */
sluice_err sl_s3_uploader_start(sl_store *s);
/* Stop the uploader thread (if it started) and wait for it; what is
 * still uploading or waiting stays on its lists, for close to free. */
void sl_s3_uploader_stop(sl_s3_store *ss);

#endif /* SL_STORE_S3_H */
