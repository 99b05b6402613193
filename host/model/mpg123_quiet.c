/* libmpg123, which libsndfile uses for MP3, prints its own warnings and errors on stderr
 * ("[src/libmpg123/layer3.c:...] error: dequantization failed!") and offers no callback to
 * route them; what matters reaches the user as qasr's own error or warning for the file. So
 * this file defines mpg123_open_handle, which libsndfile calls for every MP3 it opens: the
 * executable's definition takes the place of libmpg123's for libsndfile's calls (ELF symbol
 * interposition), adds MPG123_QUIET unless library messages are wanted (-v), and calls the real
 * one (dlsym RTLD_NEXT; qasr does not link libmpg123 itself). Without mpg123.h at build time the messages are simply not silenced. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "audio.h"

static int show_messages;

void audio_show_library_messages(int show) { __atomic_store_n(&show_messages, show, __ATOMIC_RELAXED); }

#if __has_include(<mpg123.h>)
#include <dlfcn.h>
#include <mpg123.h>

int mpg123_open_handle(mpg123_handle *mh, void *iohandle)
{
    /* both from the libmpg123 libsndfile loaded, which qasr does not link itself */
    int (*open)(mpg123_handle *, void *) = (int (*)(mpg123_handle *, void *))dlsym(RTLD_NEXT, "mpg123_open_handle");
    int (*param)(mpg123_handle *, int, long, double) =
        (int (*)(mpg123_handle *, int, long, double))dlsym(RTLD_NEXT, "mpg123_param2");
    if (!open) return MPG123_ERR;
    if (param && !__atomic_load_n(&show_messages, __ATOMIC_RELAXED)) param(mh, MPG123_ADD_FLAGS, MPG123_QUIET, 0);
    return open(mh, iohandle);
}
#endif
