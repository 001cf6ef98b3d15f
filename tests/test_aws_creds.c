/*
 * AWS credentials as AWS's tools find them (lib/aws/credentials.h): the
 * environment first, then the profile's keys in the shared files, then
 * its credential_process, whose temporary credentials are fetched again
 * five minutes before they expire; one-line errors naming the file or
 * the command. Each case runs in its own directory, which is $HOME.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/credentials.h"
#include "util.h"
#include "test.h"

/* Every variable the chain reads, unset; $HOME the case's directory. */
static void
clean_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
        "AWS_REGION", "AWS_DEFAULT_REGION"};
    for (size_t i = 0; i < SL_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
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
