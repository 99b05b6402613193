/* FFmpeg's libraries loaded at run time (ffmpeg_api.h). */
#include "ffmpeg_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static ffmpeg_api_t api;
static const ffmpeg_api_t *loaded;
static char error[512];

static void load(void)
{
    /* the majors the headers were: other majors have other ABIs */
    static const char *const libs[] = { "libavutil.so." STR(LIBAVUTIL_VERSION_MAJOR),
                                        "libavcodec.so." STR(LIBAVCODEC_VERSION_MAJOR),
                                        "libavformat.so." STR(LIBAVFORMAT_VERSION_MAJOR) };
    const char *off = getenv("QASR_FFMPEG");
    if (off && !strcmp(off, "0")) {
        snprintf(error, sizeof error, "turned off: QASR_FFMPEG=0 in the environment");
        return;
    }
    void *handles[3];
    for (int i = 0; i < 3; i++)
        if (!(handles[i] = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL))) {
            snprintf(error, sizeof error, "%s", dlerror());
            return;
        }
#define FFMPEG_LOAD(name)                                                               \
    for (int i = 0; i < 3 && !api.name; i++) api.name = (__typeof__(name) *)dlsym(handles[i], #name); \
    if (!api.name) {                                                                    \
        snprintf(error, sizeof error, "%s has no %s", libs[2], #name);                  \
        return;                                                                         \
    }
    FFMPEG_FUNCTIONS(FFMPEG_LOAD)
#undef FFMPEG_LOAD
    loaded = &api;
}

const ffmpeg_api_t *ffmpeg_api(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load);
    return loaded;
}

const char *ffmpeg_api_error(void) { return error; }
