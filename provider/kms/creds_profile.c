/* SPDX-License-Identifier: Apache-2.0 */
/* AWS credentials from the shared credentials and config files: the
 * profile looked up in both files, and the profile source (static keys, or
 * a role through web identity). */
#include "kms/creds.h"
#include "kms/ini.h"

#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

/* Keys recognised in a profile; each may be set once (configparser's
 * DuplicateOptionError). */
enum {
    PK_AKID = 1 << 0,
    PK_SECRET = 1 << 1,
    PK_TOKEN = 1 << 2,
    PK_SECTOKEN = 1 << 3,
    PK_REGION = 1 << 4,
    PK_ROLE = 1 << 5,
    PK_WIFILE = 1 << 6,
    PK_SESSION = 1 << 7
};

typedef struct {
    int found;
    unsigned seen; /* PK_* */
    char *akid;
    KMSENV_SECRET secret, token;
    int has_secret, has_token;
    KMSENV_SECRET sectoken; /* legacy aws_security_token */
    int has_sectoken;
    char *region, *role_arn, *wi_file, *session_name;
    int source_profile, credential_source, credential_process, sso;
} PROFILE;

static void profile_free(PROFILE *p)
{
    OPENSSL_free(p->akid);
    kmsenv_secret_free(&p->secret);
    kmsenv_secret_free(&p->token);
    kmsenv_secret_free(&p->sectoken);
    OPENSSL_free(p->region);
    OPENSSL_free(p->role_arn);
    OPENSSL_free(p->wi_file);
    OPENSSL_free(p->session_name);
    memset(p, 0, sizeof(*p));
}

static int key_is(const char *k, size_t kl, const char *name)
{
    return strlen(name) == kl && strncasecmp(k, name, kl) == 0;
}

static int set_str(char **dst, const char *v, size_t vl)
{
    OPENSSL_free(*dst);
    return (*dst = dupn(v, vl)) != NULL;
}

static int profile_cb(void *arg, const char *k, size_t kl, const char *v,
                      size_t vl)
{
    static const struct {
        const char *name;
        unsigned bit;
    } keys[] = {{"aws_access_key_id", PK_AKID},
                {"aws_secret_access_key", PK_SECRET},
                {"aws_session_token", PK_TOKEN},
                {"aws_security_token", PK_SECTOKEN},
                {"region", PK_REGION},
                {"role_arn", PK_ROLE},
                {"web_identity_token_file", PK_WIFILE},
                {"role_session_name", PK_SESSION}};
    PROFILE *p = arg;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (key_is(k, kl, keys[i].name)) {
            if (p->seen & keys[i].bit)
                return -1;
            p->seen |= keys[i].bit;
            break;
        }
    if (key_is(k, kl, "aws_access_key_id"))
        return set_str(&p->akid, v, vl);
    if (key_is(k, kl, "aws_secret_access_key"))
        return (p->has_secret = sec_set(&p->secret, v, vl));
    if (key_is(k, kl, "aws_session_token"))
        return (p->has_token = sec_set(&p->token, v, vl));
    if (key_is(k, kl, "aws_security_token"))
        return (p->has_sectoken = sec_set(&p->sectoken, v, vl));
    if (key_is(k, kl, "region"))
        return set_str(&p->region, v, vl);
    if (key_is(k, kl, "role_arn"))
        return set_str(&p->role_arn, v, vl);
    if (key_is(k, kl, "web_identity_token_file"))
        return set_str(&p->wi_file, v, vl);
    if (key_is(k, kl, "role_session_name"))
        return set_str(&p->session_name, v, vl);
    if (key_is(k, kl, "source_profile"))
        p->source_profile = 1;
    else if (key_is(k, kl, "credential_source"))
        p->credential_source = 1;
    else if (key_is(k, kl, "credential_process"))
        p->credential_process = 1;
    else if (key_is(k, kl, "sso_session") || key_is(k, kl, "sso_start_url"))
        p->sso = 1;
    return 1;
}

/* "~/x" -> "$HOME/x"; NULL home: no expansion possible. */
static char *expand_home(const char *path, const char *home)
{
    char *r;
    size_t n;

    if (path[0] != '~' || (path[1] != '/' && path[1] != '\0'))
        return dupn(path, strlen(path));
    if (home == NULL)
        return NULL;
    n = strlen(home) + strlen(path);
    if ((r = OPENSSL_malloc(n)) == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "path");
        return NULL;
    }
    snprintf(r, n, "%s%s", home, path + 1);
    return r;
}

/* HOME, else the password database. buf holds the result. */
static const char *home_dir(const AWS_ENV *env, char *buf, size_t buflen)
{
    struct passwd pw, *res = NULL;

    if (env->home != NULL)
        return env->home;
    if (getpwuid_r(getuid(), &pw, buf, buflen, &res) == 0 && res != NULL &&
        pw.pw_dir != NULL && pw.pw_dir[0] != '\0')
        return pw.pw_dir;
    return NULL;
}

typedef struct {
    const char *name; /* profile */
    const char *from; /* "aws_profile", "AWS_PROFILE" or NULL (implicit) */
    char *creds_path, *config_path;
    char creds_why[128], config_why[128];
    int creds_found, config_found; /* section present */
    /* merged: settings of both files, the credentials file's winning (as
     * botocore's full_config). Static keys are not merged: as botocore's
     * SharedCredentialProvider and ConfigProvider, each file's pair stands
     * alone. merged.akid/secret/token are the credentials file's if it holds
     * aws_access_key_id or aws_secret_access_key, else the config file's;
     * keys_from says which (1 credentials, 2 config, 0 none) and
     * other_akid/other_secret what the other file holds. The token is
     * aws_security_token, else aws_session_token, of the same file. */
    PROFILE merged;
    int keys_from;
    int other_akid, other_secret;
} PROFILE_LOOKUP;

static void lookup_free(PROFILE_LOOKUP *l)
{
    OPENSSL_free(l->creds_path);
    OPENSSL_free(l->config_path);
    profile_free(&l->merged);
    memset(l, 0, sizeof(*l));
}

static void profile_name(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                         const char **name, const char **from)
{
    if (cfg->profile != NULL && cfg->profile[0] != '\0') {
        *name = cfg->profile;
        *from = "aws_profile";
    } else if (env->profile != NULL) {
        *name = env->profile;
        *from = "AWS_PROFILE";
    } else {
        *name = "default";
        *from = NULL;
    }
}

static void merge_str(char **dst, char **a, char **b)
{
    *dst = *a != NULL ? *a : *b;
    if (*a != NULL)
        *a = NULL;
    else
        *b = NULL;
}

/* Loads the profile from both files (see PROFILE_LOOKUP). creds: 0 reads
 * only the config file. Returns 1, or 0 on a raised error (a malformed
 * file, allocation). */
static int profile_load(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                        int creds, PROFILE_LOOKUP *l)
{
    PROFILE pc, pg;
    INI st;
    char pwbuf[1024];
    const char *home = home_dir(env, pwbuf, sizeof(pwbuf));
    int ok = 0;

    memset(l, 0, sizeof(*l));
    memset(&pc, 0, sizeof(pc));
    memset(&pg, 0, sizeof(pg));
    profile_name(cfg, env, &l->name, &l->from);

    if (creds) {
        if (env->creds_file != NULL)
            l->creds_path = expand_home(env->creds_file, home);
        else if (home != NULL)
            l->creds_path = expand_home("~/.aws/credentials", home);
        if (l->creds_path == NULL) {
            snprintf(l->creds_why, sizeof(l->creds_why),
                     "no home directory for ~/.aws/credentials");
        } else {
            memset(&st, 0, sizeof(st));
            st.want = l->name;
            st.prop_indent = -1;
            st.cb = profile_cb;
            st.arg = &pc;
            if (ini_read_file(l->creds_path, &st, l->creds_why,
                              sizeof(l->creds_why)) < 0)
                goto done;
            l->creds_found = st.found;
        }
    }
    if (env->config_file != NULL)
        l->config_path = expand_home(env->config_file, home);
    else if (home != NULL)
        l->config_path = expand_home("~/.aws/config", home);
    if (l->config_path == NULL) {
        snprintf(l->config_why, sizeof(l->config_why),
                 "no home directory for ~/.aws/config");
    } else {
        memset(&st, 0, sizeof(st));
        st.want = l->name;
        st.config = 1;
        st.prop_indent = -1;
        st.cb = profile_cb;
        st.arg = &pg;
        if (ini_read_file(l->config_path, &st, l->config_why,
                          sizeof(l->config_why)) < 0)
            goto done;
        l->config_found = st.found;
    }

    l->merged.found = l->creds_found || l->config_found;
    if (pc.akid != NULL || pc.has_secret)
        l->keys_from = 1;
    else if (pg.akid != NULL || pg.has_secret)
        l->keys_from = 2;
    if (l->keys_from != 0) {
        PROFILE *f = l->keys_from == 1 ? &pc : &pg;
        PROFILE *o = l->keys_from == 1 ? &pg : &pc;

        l->merged.akid = f->akid;
        f->akid = NULL;
        l->merged.secret = f->secret;
        l->merged.has_secret = f->has_secret;
        memset(&f->secret, 0, sizeof(f->secret));
        if (f->has_sectoken || f->has_token) {
            KMSENV_SECRET *t = f->has_sectoken ? &f->sectoken : &f->token;

            l->merged.token = *t;
            l->merged.has_token = 1;
            memset(t, 0, sizeof(*t));
        }
        l->other_akid = o->akid != NULL;
        l->other_secret = o->has_secret;
    }
    merge_str(&l->merged.region, &pc.region, &pg.region);
    merge_str(&l->merged.role_arn, &pc.role_arn, &pg.role_arn);
    merge_str(&l->merged.wi_file, &pc.wi_file, &pg.wi_file);
    merge_str(&l->merged.session_name, &pc.session_name, &pg.session_name);
    l->merged.source_profile = pc.source_profile | pg.source_profile;
    l->merged.credential_source = pc.credential_source | pg.credential_source;
    l->merged.credential_process =
        pc.credential_process | pg.credential_process;
    l->merged.sso = pc.sso | pg.sso;
    ok = 1;
done:
    profile_free(&pc);
    profile_free(&pg);
    return ok;
}

/* "PATH has no [profile x]" / "PATH does not exist", for messages. */
static void lookup_where(const PROFILE_LOOKUP *l, int creds, char *out,
                         size_t outlen)
{
    const char *path = creds ? l->creds_path : l->config_path;
    const char *why = creds ? l->creds_why : l->config_why;
    int isdef = strcmp(l->name, "default") == 0;

    if (path == NULL)
        snprintf(out, outlen, "%s", why);
    else if (why[0] != '\0')
        snprintf(out, outlen, "%s %s", path, why);
    else
        snprintf(out, outlen, "%s has no [%s%s]", path,
                 creds || isdef ? "" : "profile ", l->name);
}

/* Profile region from the config file (env already read), or NULL. Silent. */
char *profile_region_env(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env)
{
    PROFILE_LOOKUP l;
    char *r = NULL;

    ERR_set_mark();
    if (profile_load(cfg, env, 0, &l) && l.merged.region != NULL &&
        l.merged.region[0] != '\0') {
        r = l.merged.region;
        l.merged.region = NULL;
    }
    lookup_free(&l);
    ERR_pop_to_mark();
    return r;
}

char *kmsenv_aws_profile_region(const KMSENV_AWS_CFG *cfg)
{
    static const KMSENV_AWS_CFG none;
    AWS_ENV env;

    env_load(&env);
    return profile_region_env(cfg != NULL ? cfg : &none, &env);
}

int src_profile(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
                KMSENV_AWS_CREDS *out)
{
    PROFILE_LOOKUP l;
    PROFILE *p = &l.merged;
    char w1[300], w2[300], what[160], source[96];
    const char *unsupported = NULL;
    int ret = -1;

    if (!profile_load(cfg, env, 1, &l))
        goto done;
    lookup_where(&l, 1, w1, sizeof(w1));
    lookup_where(&l, 0, w2, sizeof(w2));
    if (l.keys_from != 0)
        snprintf(what, sizeof(what), "profile '%s' (%s)", l.name,
                 l.keys_from == 1 ? l.creds_path : l.config_path);
    else
        snprintf(what, sizeof(what), "profile '%s' (%s, %s)", l.name,
                 l.creds_path != NULL ? l.creds_path : "no credentials file",
                 l.config_path != NULL ? l.config_path : "no config file");
    snprintf(source, sizeof(source), "profile %s", l.name);
    if (!p->found) {
        if (l.from != NULL) {
            KMSENV_RAISE(CRED_R,
                         "AWS profile '%s' (chosen by %s) not found: %s; %s",
                         l.name, l.from, w1, w2);
            goto done;
        }
        sum_add(sum, "profile '%s' (not found: %s; %s)", l.name, w1, w2);
        ret = 0;
        goto done;
    }
    if (p->akid != NULL || p->has_secret) {
        if (p->akid == NULL || !p->has_secret) {
            const char *file = l.keys_from == 1 ? l.creds_path : l.config_path;
            const char *ofile = l.keys_from == 1 ? l.config_path : l.creds_path;
            int other = p->akid != NULL ? l.other_secret : l.other_akid;

            /* botocore: PartialCredentialsError; each file's pair stands
             * alone, a key in the other file does not complete it */
            KMSENV_RAISE(
                CRED_R,
                "AWS credentials from profile '%s' in %s: %s is set but "
                "%s is not%s%s%s",
                l.name, file,
                p->akid != NULL ? "aws_access_key_id" : "aws_secret_access_key",
                p->akid != NULL ? "aws_secret_access_key" : "aws_access_key_id",
                other ? " there (it is in " : "", other ? ofile : "",
                other ? "; both keys must be in the same file)" : "");
            goto done;
        }
        ret = creds_fill(out, what, p->akid, strlen(p->akid),
                         (const char *)p->secret.data, p->secret.len,
                         p->has_token ? (const char *)p->token.data : NULL,
                         p->has_token ? p->token.len : 0, 0, source)
                  ? 1
                  : -1;
        goto done;
    }
    if (p->role_arn != NULL && p->wi_file != NULL) {
        char label[200], *file;
        char pwbuf[1024];

        snprintf(label, sizeof(label), "web identity (profile '%s')", l.name);
        snprintf(source, sizeof(source), "profile %s (web-identity)", l.name);
        if ((file = expand_home(p->wi_file,
                                home_dir(env, pwbuf, sizeof(pwbuf)))) == NULL) {
            KMSENV_RAISE(CRED_R, "AWS credentials from %s: cannot expand %s",
                         label, p->wi_file);
            goto done;
        }
        ret = web_identity(cfg, env, label, source, file, p->role_arn,
                           p->session_name, out);
        OPENSSL_free(file);
        goto done;
    }
    if (p->wi_file != NULL)
        unsupported = "web_identity_token_file without role_arn";
    else if (p->role_arn != NULL)
        unsupported = "role_arn with source_profile/credential_source "
                      "(assume-role chaining)";
    else if (p->credential_process)
        unsupported = "credential_process";
    else if (p->sso)
        unsupported = "IAM Identity Center (sso_*)";
    else if (p->source_profile || p->credential_source)
        unsupported = "source_profile/credential_source without role_arn";
    if (unsupported != NULL) {
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s: the profile uses %s, which "
                     "kmsenv does not support; use static keys, web "
                     "identity, or export credentials into the environment "
                     "(e.g. aws configure export-credentials --format env)",
                     what, unsupported);
        goto done;
    }
    sum_add(sum, "profile '%s' (no credentials in it)", l.name);
    ret = 0;
done:
    lookup_free(&l);
    return ret;
}
