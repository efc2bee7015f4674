/* SPDX-License-Identifier: Apache-2.0 */
/* provider/keys/ without a provider: the registry of loaded keysets (one
 * load shared by threads, reload on request, failures not kept) and the
 * loader's keyring lists, counted by the keyring calls in the debug log. */
#include "keys/keyobj.h"
#include "keys/loader.h"
#include "keys/registry.h"
#include "util/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "harness.h"

static char dir[256], kek[300], ks[300], logpath[300];
static KMSENV_KMS_ENV kms;
static KMSENV_KEYS_ENV env = {NULL, NULL, &kms, NULL, NULL};

static int unwraps(void)
{
    FILE *f = fopen(logpath, "r");
    char line[1024];
    int n = 0;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, "keyring call: unwrap") != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

static int write_file(const char *path, const void *p, size_t n, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    int ok = fd >= 0 && write(fd, p, n) == (ssize_t)n;

    if (fd >= 0)
        close(fd);
    return ok && chmod(path, mode) == 0;
}

static int setup(void)
{
    unsigned char key[32], *der = NULL;
    char spec[320];
    size_t len = 0;
    KMSENV_KEYOBJ *k;
    int ok;

    snprintf(dir, sizeof(dir), "/tmp/kmsenv-keys-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 0;
    snprintf(kek, sizeof(kek), "%s/kek", dir);
    snprintf(ks, sizeof(ks), "%s/ks.der", dir);
    snprintf(logpath, sizeof(logpath), "%s/log", dir);
    snprintf(spec, sizeof(spec), "file:%s", kek);
    if (RAND_bytes(key, sizeof(key)) <= 0 ||
        !write_file(kek, key, sizeof(key), 0600))
        return 0;
    k = kmsenv_keyobj_generate(&env, spec);
    ok = k != NULL && kmsenv_keyobj_get_der(k, &der, &len) &&
         write_file(ks, der, len, 0644);
    kmsenv_keyobj_free(k);
    OPENSSL_free(der);
    return ok;
}

struct thr {
    KMSENV_REGISTRY *r;
    KMSENV_KEYOBJ *k;
};

static void *getter(void *arg)
{
    struct thr *t = arg;

    t->k = kmsenv_registry_get(t->r, &env, ks, NULL);
    return NULL;
}

static void test_registry(void)
{
    KMSENV_REGISTRY *r = kmsenv_registry_new();
    KMSENV_KEYOBJ *a, *b, *c;
    struct thr t[8];
    pthread_t th[8];
    char missing[320];
    int i, same = 1, before;

    a = kmsenv_registry_get(r, &env, ks, NULL);
    b = kmsenv_registry_get(r, &env, ks, NULL);
    CHECK(a != NULL && a == b && unwraps() == 1,
          "registry: a keyset is loaded once and shared (%d unwrap)",
          unwraps());
    kmsenv_registry_reload(r, ks);
    c = kmsenv_registry_get(r, &env, ks, NULL);
    CHECK(c != NULL && c != a && unwraps() == 2,
          "registry: reload reads it anew");
    CHECK(kmsenv_keyobj_id(a) != NULL && a->loaded,
          "registry: an object handed out before a reload stays usable");
    kmsenv_keyobj_free(a);
    kmsenv_keyobj_free(b);
    kmsenv_keyobj_free(c);

    kmsenv_registry_reload(r, NULL);
    before = unwraps();
    for (i = 0; i < 8; i++) {
        t[i].r = r;
        pthread_create(&th[i], NULL, getter, &t[i]);
    }
    for (i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < 8; i++)
        same &= t[i].k != NULL && t[i].k == t[0].k;
    CHECK(same && unwraps() - before == 1,
          "registry: 8 threads asking at once share one load (%d unwraps)",
          unwraps() - before);
    for (i = 0; i < 8; i++)
        kmsenv_keyobj_free(t[i].k);

    snprintf(missing, sizeof(missing), "%s/later.der", dir);
    CHECK(kmsenv_registry_get(r, &env, missing, NULL) == NULL &&
              strstr(take_errors(), "later.der") != NULL,
          "registry: a failed load names the file");
    CHECK(link(ks, missing) == 0 &&
              (a = kmsenv_registry_get(r, &env, missing, NULL)) != NULL,
          "registry: a failure is not kept; the next get loads");
    kmsenv_keyobj_free(a);
    kmsenv_registry_free(r);
}

static void test_loader_keyring_list(void)
{
    char list[700];
    KMSENV_KEYOBJ *k;

    snprintf(list, sizeof(list), "file:%s/none;file:%s", dir, kek);
    k = kmsenv_loader_load_file(&env, ks, list);
    CHECK(k != NULL, "loader: keyring list falls over to its second KEK");
    kmsenv_keyobj_free(k);
    ERR_clear_error();
}

int main(int argc, char **argv)
{
    char spec[320];

    if (argc > 1 && strcmp(argv[1], "-v") == 0)
        opt_verbose = 1;
    CHECK(setup(), "temporary KEK and keyset under %s", dir);
    snprintf(spec, sizeof(spec), "file:%s,level:1", logpath);
    kmsenv_log_init(spec);
    test_registry();
    test_loader_keyring_list();
    kmsenv_log_close();
    unlink(kek);
    unlink(ks);
    snprintf(spec, sizeof(spec), "%s/later.der", dir);
    unlink(spec);
    unlink(logpath);
    rmdir(dir);
    return harness_done();
}
