/*
 * AWS credentials as AWS's tools find them (lib/aws/credentials.h): the
 * environment first, then the profile's keys in the shared files, then
 * its credential_process, then web identity through STS, the container
 * endpoint and the instance metadata service (IMDSv2), the last three
 * against a loopback peer that speaks their protocols (aws_peer.c).
 * Temporary credentials are fetched again before they expire; errors
 * are one line naming the file, the command or the service. Each case
 * runs in its own directory, which is $HOME.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "aws/credentials.h"
#include "aws/sources.h"
#include "aws_peer.h"
#include "util.h"
#include "test.h"

/* Every variable the chain reads, unset; $HOME the case's directory. */
static void
clean_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "AWS_METADATA_SERVICE_TIMEOUT", "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
        "AWS_CA_BUNDLE", "http_proxy", "https_proxy", "HTTP_PROXY",
        "HTTPS_PROXY", "ALL_PROXY", "all_proxy"};
    for (size_t i = 0; i < SL_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
    /* This machine's own metadata service (if any) stays out of it; the
     * cases that want one point the chain at the peer. */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    char cwd[1024];
    ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    setenv("HOME", cwd, 1);
    mkdir(".aws", 0700);
}

static void
write_text(const char *path, const char *text)
{
    test_write_file(path, text, strlen(text));
}

/* The chain's answer, or its error in `why`. */
static sluice_err
get(sl_aws_creds *c, char *why, size_t size)
{
    sl_aws_chain *chain = sl_aws_chain_new();
    ASSERT(chain != NULL);
    sluice_err err = sl_aws_chain_get(chain, c, why, size);
    sl_aws_chain_free(chain);
    return err;
}

TEST(the_environment_comes_first)
{
    clean_env();
    write_text(".aws/credentials",
               "[default]\naws_access_key_id = FILEKEY\n"
               "aws_secret_access_key = FILESECRET\n");
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    setenv("AWS_SESSION_TOKEN", "ENVTOKEN", 1);
    sl_aws_creds c;
    char why[400];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "ENVKEY");
    ASSERT_STR_EQ(c.secret_key, "ENVSECRET");
    ASSERT_STR_EQ(c.session_token, "ENVTOKEN");
    ASSERT_EQ(c.expires_ms, 0);
    ASSERT_STR_EQ(c.source, "the environment");
    /* Half of them is an error, not a fall through to the files. */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_EQ(why, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY "
                       "is not");
}

TEST(the_default_profile_in_the_credentials_file)
{
    clean_env();
    write_text(".aws/credentials",
               "# keys\n[other]\naws_access_key_id=NO\n"
               "aws_secret_access_key=NO\n\n"
               "[default]\naws_access_key_id =  AKID  \n"
               "; a comment\naws_secret_access_key = SECRET\n"
               "aws_session_token = TOKEN\n");
    sl_aws_creds c;
    char why[400];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "AKID");
    ASSERT_STR_EQ(c.secret_key, "SECRET");
    ASSERT_STR_EQ(c.session_token, "TOKEN");
    ASSERT_STR_CONTAINS(c.source, "profile default in ");
    ASSERT_STR_CONTAINS(c.source, ".aws/credentials");
}

TEST(a_named_profile_in_the_config_file_and_its_region)
{
    clean_env();
    write_text("conf",
               "[default]\nregion = us-west-2\n"
               "[profile partner]\nregion = eu-west-1\n"
               "s3 =\n  max_concurrent_requests = 20\n"
               "aws_access_key_id = PK\naws_secret_access_key = PS\n");
    setenv("AWS_CONFIG_FILE", "conf", 1);
    setenv("AWS_PROFILE", "partner", 1);
    sl_aws_creds c;
    char why[400], region[64];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK");
    ASSERT_STR_EQ(c.session_token, "");
    ASSERT_STR_EQ(c.source, "profile partner in conf");
    ASSERT(sl_aws_region(region, sizeof region));
    ASSERT_STR_EQ(region, "eu-west-1");
    setenv("AWS_REGION", "ap-south-1", 1);
    ASSERT(sl_aws_region(region, sizeof region));
    ASSERT_STR_EQ(region, "ap-south-1");
    /* The credentials file's keys win over the config file's. */
    write_text("creds", "[partner]\naws_access_key_id = CK\n"
                        "aws_secret_access_key = CS\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "creds", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "CK");
}

TEST(what_is_missing_is_said_with_where_it_was_looked_for)
{
    clean_env();
    sl_aws_creds c;
    char why[400];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "no AWS credentials: none in the environment");
    ASSERT_STR_CONTAINS(why, "nor for profile default in ");
    ASSERT_STR_CONTAINS(why, ".aws/credentials or ");
    setenv("AWS_PROFILE", "nope", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "AWS_PROFILE=nope: no such profile in ");
    write_text(".aws/credentials", "[nope]\naws_access_key_id = K\n");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "profile nope in ");
    ASSERT_STR_CONTAINS(why, "aws_access_key_id without "
                             "aws_secret_access_key");
    write_text(".aws/config", "[profile nope]\nrole_arn = arn:aws:iam::1:r\n");
    write_text(".aws/credentials", "");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "role_arn (assuming a role) is not supported");
    /* A profile with nothing of its own: the chain goes on, and says
     * where it looked. */
    write_text(".aws/config", "[profile nope]\nregion = eu-west-1\n");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "no AWS credentials: none in the environment "
                             "(AWS_ACCESS_KEY_ID) nor for profile nope in ");
}

/* A credential_process that counts its runs in ./runs and prints
 * credentials expiring `in_s` seconds from now. */
static void
write_process(int in_s)
{
    char expires[32];
    time_t at = time(NULL) + in_s;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char script[600];
    snprintf(script, sizeof script,
             "#!/bin/sh\necho x >>runs\n"
             "printf '{\"Version\": 1, \"AccessKeyId\": \"PK%%s\", "
             "\"SecretAccessKey\": \"PS\", \"SessionToken\": \"PT\", "
             "\"Expiration\": \"%s\"}' \"$(wc -l <runs | tr -d ' ')\"\n",
             expires);
    write_text("process.sh", script);
    chmod("process.sh", 0755);
}

static int
runs(void)
{
    FILE *f = fopen("runs", "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

TEST(credential_process_and_its_renewal_before_expiry)
{
    clean_env();
    char conf[1200], cwd[1024];
    ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(conf, sizeof conf,
             "[default]\ncredential_process = %s/process.sh --role x\n", cwd);
    write_text(".aws/config", conf);
    sl_aws_chain *chain = sl_aws_chain_new();
    sl_aws_creds c;
    char why[400];
    /* An hour left: fetched once, then kept. */
    write_process(3600);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK1");
    ASSERT_STR_EQ(c.session_token, "PT");
    ASSERT_GT(c.expires_ms, sl_now_ms() + 3500 * 1000);
    ASSERT_STR_EQ(c.source, "profile default's credential_process");
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK1");
    ASSERT_EQ(runs(), 1);
    sl_aws_chain_free(chain);
    /* Two minutes left, within the five of the margin: fetched again at
     * every call until new ones last longer. */
    chain = sl_aws_chain_new();
    write_process(120);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK2");
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK3");
    write_process(3600);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK4");
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_EQ(runs(), 4);
    /* A renewal that fails while the old ones still hold: they serve. */
    sl_aws_chain_free(chain);
    chain = sl_aws_chain_new();
    write_process(120);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    write_text("process.sh", "#!/bin/sh\nexit 3\n");
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "PK5");
    sl_aws_chain_free(chain);
}

TEST(a_credential_process_that_fails_is_one_line_naming_it)
{
    clean_env();
    char conf[1200], cwd[1024];
    ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(conf, sizeof conf,
             "[default]\ncredential_process = %s/process.sh\n", cwd);
    write_text(".aws/config", conf);
    static const struct {
        const char *script, *why;
    } cases[] = {
        {"#!/bin/sh\nexit 3\n", "credential_process: it exited with status 3"},
        {"#!/bin/sh\necho nope\n", "its output is not a JSON object"},
        {"#!/bin/sh\necho '{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\"}'"
         "\n",
         "its output has no \"Version\": 1"},
        {"#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"a\"}'\n",
         "lacks \"AccessKeyId\" or \"SecretAccessKey\""},
        {"#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"a\","
         "\"SecretAccessKey\":\"b\",\"Expiration\":\"soon\"}'\n",
         "its \"Expiration\" \"soon\" is not an ISO 8601 time"},
        /* 60,000 levels: refused before a tree is built (building
         * and freeing one recurses a level at a time). */
        {"#!/bin/sh\nhead -c 60000 /dev/zero | tr '\\0' '['\n",
         "its output nests too deeply"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        write_text("process.sh", cases[i].script);
        chmod("process.sh", 0755);
        sl_aws_creds c;
        char why[400];
        ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
        ASSERT_STR_CONTAINS(why, "profile default in ");
        ASSERT_STR_CONTAINS(why, cases[i].why);
        ASSERT(strchr(why, '\n') == NULL);
    }
}

TEST(iso_8601_times)
{
    int64_t ms;
    ASSERT(sl_aws_parse_time("2026-12-06T12:00:00Z", &ms));
    ASSERT_EQ(ms, 1796558400000LL);
    ASSERT(sl_aws_parse_time("2026-12-06T12:00:00.123Z", &ms));
    ASSERT_EQ(ms, 1796558400000LL);
    ASSERT(sl_aws_parse_time("2026-12-06T12:00:00+00:00", &ms));
    ASSERT(!sl_aws_parse_time("2026-12-06 12:00:00", &ms));
    ASSERT(!sl_aws_parse_time("2026-12-06T12:00:00+02:00", &ms));
    ASSERT(!sl_aws_parse_time("tomorrow", &ms));
}

/* ---- The sources that ask a service, against the loopback peer. ---- */

#define ROLE "arn:aws:iam::123456789012:role/sluice"

/* Point web identity at the peer: token file ./web-token, the role. */
static void
use_web_identity(const aws_peer *peer)
{
    char url[200];
    aws_peer_url(peer, "/", url, sizeof url);
    setenv("AWS_ENDPOINT_URL_STS", url, 1);
    write_text("web-token", "web-token-1\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "web-token", 1);
    setenv("AWS_ROLE_ARN", ROLE, 1);
}

/* Point the container endpoint at the peer, its token in ./ctr-auth. */
static void
use_container(const aws_peer *peer)
{
    char url[200];
    aws_peer_url(peer, "/v2/credentials/task-1", url, sizeof url);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    write_text("ctr-auth", "ctr-auth-1\n");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "ctr-auth", 1);
}

static void
use_imds(const aws_peer *peer)
{
    char url[200];
    aws_peer_url(peer, "", url, sizeof url);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
}

TEST(web_identity_from_the_environment_through_sts)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_web_identity(peer);
    sl_aws_creds c;
    char why[600], session[128], expect[64];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-1");
    ASSERT_STR_EQ(c.secret_key, "STSSECRET");
    ASSERT_STR_EQ(c.session_token, "STSTOKEN-1&more"); /* XML decoded */
    ASSERT_GT(c.expires_ms, sl_now_ms() + 3500 * 1000);
    ASSERT_LT(c.expires_ms, sl_now_ms() + 3700 * 1000);
    ASSERT_STR_EQ(c.source, "web identity (role " ROLE ")");
    aws_peer_last_session(peer, session, sizeof session);
    snprintf(expect, sizeof expect, "sluice-%ld", (long)getpid());
    ASSERT_STR_EQ(session, expect);
    setenv("AWS_ROLE_SESSION_NAME", "nightly", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-2");
    aws_peer_last_session(peer, session, sizeof session);
    ASSERT_STR_EQ(session, "nightly");
    aws_peer_counts n = aws_peer_get_counts(peer);
    ASSERT_EQ(n.sts, 2);
    ASSERT_EQ(n.container + n.imds_token + n.imds_get, 0);
    aws_peer_free(peer);
}

TEST(web_identity_from_the_profile_and_aws_endpoint_url)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    char url[200], conf[1200], session[128];
    aws_peer_url(peer, "/", url, sizeof url);
    setenv("AWS_ENDPOINT_URL", url, 1); /* STS's own is not set */
    write_text("tok", "web-token-1");
    snprintf(conf, sizeof conf,
             "[profile ci]\nregion = eu-west-1\n"
             "web_identity_token_file = tok\nrole_arn = %s\n"
             "role_session_name = ci-run\n",
             ROLE);
    write_text(".aws/config", conf);
    setenv("AWS_PROFILE", "ci", 1);
    sl_aws_creds c;
    char why[600];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-1");
    aws_peer_last_session(peer, session, sizeof session);
    ASSERT_STR_EQ(session, "ci-run");
    /* The environment's role wins over the profile's. */
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/other", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "refused role arn:aws:iam::123456789012:role/"
                             "other: AccessDenied: Not authorized to perform "
                             "sts:AssumeRoleWithWebIdentity (HTTP 403)");
    aws_peer_free(peer);
}

TEST(web_identity_errors_are_one_line_naming_sts)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_web_identity(peer);
    char url[200];
    aws_peer_url(peer, "/", url, sizeof url);
    sl_aws_creds c;
    char why[600], expect[400];
    /* A token STS does not accept: its code and message. */
    write_text("web-token", "web-token-forged");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    snprintf(expect, sizeof expect,
             "web identity: STS at %s refused role " ROLE
             ": InvalidIdentityToken: The web identity token that was "
             "passed could not be validated by AWS.",
             url);
    ASSERT_STR_CONTAINS(why, expect);
    ASSERT_STR_CONTAINS(why, "(HTTP 400)");
    ASSERT(strchr(why, '\n') == NULL);
    /* The token file is not there, or empty. */
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "nope", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_EQ(why, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE: cannot "
                       "read nope: No such file or directory");
    write_text("empty", "\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "empty", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "empty is empty");
    /* A token file without a role. */
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "web-token", 1);
    unsetenv("AWS_ROLE_ARN");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is "
                             "set but no role is: set AWS_ROLE_ARN");
    /* An answer that is not STS's. */
    setenv("AWS_ROLE_ARN", ROLE, 1);
    aws_peer_url(peer, "/v2/credentials/x", url, sizeof url);
    setenv("AWS_ENDPOINT_URL_STS", url, 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "answered HTTP 401 for role " ROLE);
    aws_peer_free(peer);
}

TEST(the_container_endpoint_and_its_authorization)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_container(peer);
    char url[200];
    aws_peer_url(peer, "/v2/credentials/task-1", url, sizeof url);
    sl_aws_creds c;
    char why[600], expect[400];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "CTRKEY-1");
    ASSERT_STR_EQ(c.secret_key, "CTRSECRET");
    ASSERT_STR_EQ(c.session_token, "CTRTOKEN-1");
    ASSERT_GT(c.expires_ms, sl_now_ms() + 3500 * 1000);
    snprintf(expect, sizeof expect, "the container endpoint %s", url);
    ASSERT_STR_EQ(c.source, expect);
    /* The file wins over the variable; without the file, the variable. */
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "CTRKEY-2");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ctr-auth-1", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "CTRKEY-3");
    /* A wrong token: the endpoint's status and message, one line. */
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong", 1);
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    snprintf(expect, sizeof expect,
             "container endpoint %s: HTTP 401: invalid Authorization token",
             url);
    ASSERT_STR_EQ(why, expect);
    aws_peer_counts n = aws_peer_get_counts(peer);
    ASSERT_EQ(n.container, 4);
    ASSERT_EQ(n.container_issued, 3);
    aws_peer_free(peer);
}

TEST(which_container_urls_are_trusted)
{
    clean_env();
    char url[300], why[400];
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc",
           1);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/x", 1);
    ASSERT_EQ(sl_aws_container_url(url, sizeof url, why, sizeof why), 1);
    ASSERT_STR_EQ(url, "http://169.254.170.2/v2/credentials/abc");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    static const struct {
        const char *url;
        int ok;
    } cases[] = {
        {"http://127.0.0.1:1/x", 1},
        {"http://127.3.4.5/creds", 1},
        {"http://[::1]:8080/creds", 1},
        {"http://localhost/creds", 1},
        {"http://169.254.170.23/v1/credentials", 1},
        {"http://[fd00:ec2::23]/v1/credentials", 1},
        {"https://creds.example.com/x", 1},
        {"http://creds.example.com/x", -1},
        {"http://10.0.0.1/x", -1},
        {"ftp://127.0.0.1/x", -1},
        {"not a url", -1},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", cases[i].url, 1);
        int got = sl_aws_container_url(url, sizeof url, why, sizeof why);
        if (got != cases[i].ok)
            TEST_FAIL_("%s: %d, not %d (%s)", cases[i].url, got,
                       cases[i].ok, got < 0 ? why : url);
    }
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/x", 1);
    sl_aws_creds c;
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://"
                             "10.0.0.1/x: only https, or http to a loopback");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    ASSERT_EQ(sl_aws_container_url(url, sizeof url, why, sizeof why), 0);
}

TEST(the_instance_metadata_service_with_imdsv2)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    char base[200], url[300];
    aws_peer_url(peer, "", base, sizeof base);
    /* The peer is strict: a GET without a token is refused (401), a PUT
     * without a TTL too (400). */
    CURL *e = curl_easy_init();
    ASSERT_NOT_NULL(e);
    long status = 0;
    snprintf(url, sizeof url,
             "%s/latest/meta-data/iam/security-credentials/", base);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, NULL);
    FILE *sink = fopen("/dev/null", "w");
    curl_easy_setopt(e, CURLOPT_WRITEDATA, sink);
    ASSERT_EQ(curl_easy_perform(e), CURLE_OK);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    ASSERT_EQ(status, 401);
    snprintf(url, sizeof url, "%s/latest/api/token", base);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    ASSERT_EQ(curl_easy_perform(e), CURLE_OK);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    ASSERT_EQ(status, 400);
    curl_easy_cleanup(e);
    fclose(sink);

    use_imds(peer);
    sl_aws_creds c;
    char why[600], expect[500];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "IMDSKEY-1");
    ASSERT_STR_EQ(c.secret_key, "IMDSSECRET");
    ASSERT_STR_EQ(c.session_token, "IMDSTOKEN-1");
    ASSERT_GT(c.expires_ms, sl_now_ms() + 3500 * 1000);
    snprintf(expect, sizeof expect,
             "the instance metadata service at %s (role sluice-role)", base);
    ASSERT_STR_EQ(c.source, expect);
    aws_peer_counts n = aws_peer_get_counts(peer);
    ASSERT_EQ(n.imds_token, 2);        /* ours, and the bare PUT above */
    ASSERT_EQ(n.imds_get, 3);          /* the bare GET, the role, its keys */
    ASSERT_EQ(n.imds_unauthorized, 1); /* the bare GET alone */
    ASSERT_EQ(n.imds_issued, 1);
    /* An instance without a role: said so, one line. */
    aws_peer_set_instance_role(peer, "");
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    snprintf(expect, sizeof expect,
             "instance metadata service at %s: no IAM role is attached to "
             "this instance (HTTP 404 on "
             "/latest/meta-data/iam/security-credentials/)",
             base);
    ASSERT_STR_EQ(why, expect);
    aws_peer_free(peer);
}

TEST(imds_disabled_and_nothing_found_lists_what_was_tried)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_imds(peer);
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    sl_aws_creds c;
    char why[800];
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "no AWS credentials: none in the environment "
                             "(AWS_ACCESS_KEY_ID) nor for profile default "
                             "in ");
    ASSERT_STR_CONTAINS(why, "; no web identity "
                             "(AWS_WEB_IDENTITY_TOKEN_FILE); no container "
                             "endpoint (AWS_CONTAINER_CREDENTIALS_*_URI); the "
                             "instance metadata service "
                             "is disabled (AWS_EC2_METADATA_DISABLED)");
    aws_peer_counts n = aws_peer_get_counts(peer);
    ASSERT_EQ(n.imds_token + n.imds_get, 0);
    aws_peer_free(peer);
    /* A service that is not there (a closed port): tried, and said. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    int64_t start = sl_mono_ms();
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_LT(sl_mono_ms() - start, 2000);
    char expect[200];
    snprintf(expect, sizeof expect, "; no instance metadata service at %s (",
             url);
    ASSERT_STR_CONTAINS(why, "no AWS credentials: none in the environment");
    ASSERT_STR_CONTAINS(why, expect);
    ASSERT(strchr(why, '\n') == NULL);
}

TEST(the_order_env_profile_web_identity_container_imds)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_web_identity(peer);
    use_container(peer);
    use_imds(peer);
    write_text(".aws/credentials", "[default]\naws_access_key_id = FILEKEY\n"
                                   "aws_secret_access_key = FILESECRET\n");
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    sl_aws_creds c;
    char why[600];
    static const struct {
        const char *key;
        int sts, container, imds;
    } steps[] = {
        {"ENVKEY", 0, 0, 0},    {"FILEKEY", 0, 0, 0}, {"STSKEY-1", 1, 0, 0},
        {"CTRKEY-1", 1, 1, 0}, {"IMDSKEY-1", 1, 1, 1},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(steps); i++) {
        ASSERT_EQ(get(&c, why, sizeof why), SLUICE_OK);
        ASSERT_STR_EQ(c.access_key, steps[i].key);
        /* No source after the one that answered was asked. */
        aws_peer_counts n = aws_peer_get_counts(peer);
        ASSERT_EQ(n.sts, steps[i].sts);
        ASSERT_EQ(n.container, steps[i].container);
        ASSERT_EQ(n.imds_token, steps[i].imds);
        switch (i) { /* take away the source that answered */
        case 0:
            unsetenv("AWS_ACCESS_KEY_ID");
            unsetenv("AWS_SECRET_ACCESS_KEY");
            break;
        case 1: write_text(".aws/credentials", ""); break;
        case 2: unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE"); break;
        case 3: unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"); break;
        }
    }
    aws_peer_free(peer);
}

/* The peer's answers expire in 6 minutes; the chain renews 358 s before
 * expiry, so they are due again 2 s after they were fetched (the
 * Expiration has whole seconds: the fetch is between 1 and 2 s before
 * the point), and a failed renewal is tried again a second later. */
static sl_aws_chain *
six_minute_chain(aws_peer *peer)
{
    aws_peer_set_expiry(peer, 360);
    sl_aws_chain *chain = sl_aws_chain_new();
    ASSERT_NOT_NULL(chain);
    sl_aws_chain_set_timing(chain, 358 * 1000, 1000);
    return chain;
}

static void
sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

TEST(each_source_is_fetched_again_after_its_refresh_point)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    static const char *const prefixes[] = {"STSKEY-", "CTRKEY-", "IMDSKEY-"};
    for (int source = 0; source < 3; source++) {
        clean_env();
        if (source == 0)
            use_web_identity(peer);
        else if (source == 1)
            use_container(peer);
        else
            use_imds(peer);
        sl_aws_chain *chain = six_minute_chain(peer);
        sl_aws_creds c;
        char why[600], key[32];
        ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
        snprintf(key, sizeof key, "%s1", prefixes[source]);
        ASSERT_STR_EQ(c.access_key, key);
        ASSERT_GT(c.expires_ms, sl_now_ms() + 350 * 1000);
        ASSERT_LT(c.expires_ms, sl_now_ms() + 361 * 1000);
        /* Before the refresh point: kept, nothing asked. */
        ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
        ASSERT_STR_EQ(c.access_key, key);
        aws_peer_counts n = aws_peer_get_counts(peer);
        ASSERT_EQ(n.sts_issued + n.container_issued + n.imds_issued, 1);
        /* After it: fetched again on the next get. */
        sleep_ms(2100);
        ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
        snprintf(key, sizeof key, "%s2", prefixes[source]);
        ASSERT_STR_EQ(c.access_key, key);
        n = aws_peer_get_counts(peer);
        ASSERT_EQ(n.sts_issued + n.container_issued + n.imds_issued, 2);
        sl_aws_chain_free(chain);
        aws_peer_free(peer);
        peer = aws_peer_start();
    }
    aws_peer_free(peer);
}

TEST(a_rotated_token_file_is_read_again)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_web_identity(peer);
    sl_aws_chain *chain = six_minute_chain(peer);
    sl_aws_creds c;
    char why[600];
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-1");
    /* The provider rotates the token: the old one is refused now. */
    aws_peer_set_web_token(peer, "web-token-2");
    write_text("web-token", "web-token-2\n");
    sleep_ms(2100);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-2");
    ASSERT_EQ(aws_peer_get_counts(peer).sts, 2);
    sl_aws_chain_free(chain);

    /* The container's authorization token file likewise. */
    clean_env();
    use_container(peer);
    chain = six_minute_chain(peer);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "CTRKEY-1");
    aws_peer_set_container_auth(peer, "ctr-auth-2");
    write_text("ctr-auth", "ctr-auth-2");
    sleep_ms(2100);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "CTRKEY-2");
    ASSERT_EQ(aws_peer_get_counts(peer).container, 2);
    sl_aws_chain_free(chain);
    aws_peer_free(peer);
}

TEST(a_failed_renewal_keeps_the_old_ones_while_they_hold)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    use_web_identity(peer);
    sl_aws_chain *chain = six_minute_chain(peer);
    sl_aws_creds c;
    char why[600];
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-1");
    /* STS is down past the refresh point: the old ones serve. */
    aws_peer_set_fail(peer, 503);
    sleep_ms(2100);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-1");
    ASSERT_STR_EQ(c.session_token, "STSTOKEN-1&more");
    ASSERT_EQ(aws_peer_get_counts(peer).sts, 3); /* 1, then 2 tries */
    /* Not asked again at once: a second later. */
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_EQ(aws_peer_get_counts(peer).sts, 3);
    aws_peer_set_fail(peer, 0);
    sleep_ms(1100);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-2");
    sl_aws_chain_free(chain);

    /* Once they have expired, a failure is an error, saying STS's. */
    aws_peer_set_expiry(peer, 2);
    chain = sl_aws_chain_new();
    sl_aws_chain_set_timing(chain, 1000, 1000);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_OK);
    ASSERT_STR_EQ(c.access_key, "STSKEY-3");
    aws_peer_set_fail(peer, 503);
    sleep_ms(2100);
    ASSERT_EQ(sl_aws_chain_get(chain, &c, why, sizeof why), SLUICE_ECONFIG);
    ASSERT_STR_CONTAINS(why, "ServiceUnavailable: Service is unable to "
                             "handle request. (HTTP 503)");
    sl_aws_chain_free(chain);
    aws_peer_free(peer);
}

TEST_TIMEOUT(a_peer_that_never_answers_times_out, 120)
{
    clean_env();
    aws_peer *peer = aws_peer_start();
    aws_peer_set_hang(peer, true);
    sl_aws_creds c;
    char why[600];
    /* STS: two tries of 5 s. */
    use_web_identity(peer);
    int64_t start = sl_mono_ms();
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    int64_t took = sl_mono_ms() - start;
    ASSERT_GE(took, 9000);
    ASSERT_LT(took, 15000);
    ASSERT_STR_CONTAINS(why, "web identity: STS at ");
    ASSERT_STR_CONTAINS(why, "timed out");
    ASSERT_EQ(aws_peer_get_counts(peer).sts, 2);
    /* The container endpoint: two tries of 2 s. */
    clean_env();
    use_container(peer);
    start = sl_mono_ms();
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    took = sl_mono_ms() - start;
    ASSERT_GE(took, 3500);
    ASSERT_LT(took, 8000);
    ASSERT_STR_CONTAINS(why, "container endpoint http://127.0.0.1:");
    ASSERT_STR_CONTAINS(why, "timed out");
    ASSERT_EQ(aws_peer_get_counts(peer).container, 2);
    /* The metadata service: two tries of 2 s for the token, then it is
     * taken for absent, and said so. */
    clean_env();
    use_imds(peer);
    start = sl_mono_ms();
    ASSERT_EQ(get(&c, why, sizeof why), SLUICE_ECONFIG);
    took = sl_mono_ms() - start;
    ASSERT_GE(took, 3500);
    ASSERT_LT(took, 8000);
    ASSERT_STR_CONTAINS(why, "no AWS credentials: ");
    ASSERT_STR_CONTAINS(why, "; no instance metadata service at "
                             "http://127.0.0.1:");
    ASSERT_STR_CONTAINS(why, "(Timeout was reached)");
    ASSERT_EQ(aws_peer_get_counts(peer).imds_token, 2);
    aws_peer_free(peer);
}
