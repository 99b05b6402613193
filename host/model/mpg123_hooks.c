/* libmpg123, which libsndfile uses for MP3, through two of its calls that libsndfile makes: the
 * executable's definitions take the place of libmpg123's for libsndfile's calls (ELF symbol
 * interposition) and call the real ones (dlsym RTLD_NEXT; qasr does not link libmpg123 itself).
 * Without mpg123.h at build time neither is there.
 * - mpg123_open_handle (every MP3 opened): adds MPG123_QUIET unless library messages are wanted
 *   (-v). libmpg123 prints its warnings and errors on stderr itself ("[src/libmpg123/layer3.c:
 *   ...] error: dequantization failed!") with no callback to route them; what matters reaches the
 *   user as qasr's own error or warning for the file.
 * - mpg123_length (at open): scans the frames first when the length is not exact. For a VBR
 *   file without a Xing/Info frame libmpg123 estimates the length from the first frame's bitrate,
 *   libsndfile takes it as the frame count and stops reading there: the rest of the audio would
 *   be dropped without a word. The scan reads the frame headers, not the audio (a read of the
 *   file), done only where no Xing/Info (LAME) frame gave the encoder delay. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "audio.h"
#include "decode.h"

static int show_messages;

void audio_show_library_messages(int show) { __atomic_store_n(&show_messages, show, __ATOMIC_RELAXED); }
int audio_library_messages_shown(void) { return __atomic_load_n(&show_messages, __ATOMIC_RELAXED); }

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

off_t mpg123_length(mpg123_handle *mh)
{
    off_t (*length)(mpg123_handle *) = (off_t (*)(mpg123_handle *))dlsym(RTLD_NEXT, "mpg123_length");
    int (*state)(mpg123_handle *, enum mpg123_state, long *, double *) =
        (int (*)(mpg123_handle *, enum mpg123_state, long *, double *))dlsym(RTLD_NEXT, "mpg123_getstate");
    int (*scan)(mpg123_handle *) = (int (*)(mpg123_handle *))dlsym(RTLD_NEXT, "mpg123_scan");
    if (!length) return MPG123_ERR;
    /* no encoder delay known: no Xing/Info (LAME) frame was read, the length is an estimate */
    long delay = -1;
    if (scan && (!state || state(mh, MPG123_ENC_DELAY, &delay, NULL) != MPG123_OK || delay < 0)) scan(mh);
    return length(mh);
}
#endif
