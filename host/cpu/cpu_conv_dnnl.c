/* 3x3 stride-2 convolution + bias + GELU on oneDNN (contract in cpu_conv_dnnl.h).
 *
 * Our activations are [C][N][H][W] (the channel-outermost layout of backend.h), which is
 * oneDNN's dims (N, C, H, W) with tag "bacd". The primitive runs in the blocked layouts it asks
 * for: per call a reorder rounds the input to bf16 in its layout, the convolution writes fp32
 * in its own layout, and a reorder puts that back in ours (oneDNN has only reference kernels for
 * our layout itself: 1 GFLOP/s); the kernel is reordered to bf16 once, when the primitive for a
 * shape is made. Shapes are few (up to 8 chunks of one width: 100 frames, or a short clip's
 * own), so primitives are cached by shape and kernel address, until the kernel is forgotten. */
#include "cpu_conv_dnnl.h"

#include <pthread.h>
#include <stdlib.h>

#include "dnnl_check.h"
#include "util.h"

#define MAX_CONVS 64 /* cache entries; past this the cache starts over */

typedef struct {
    int Cin, Cout, N, Hin, Win;
    dnnl_primitive_t conv, to_conv, from_conv; /* the convolution and the reorders around it */
    dnnl_memory_t usr_src, usr_dst, src, dst, wei, bias; /* handles set per call */
    void *wei_data;                            /* the kernel in oneDNN's layout */
    size_t src_bytes, dst_bytes;
} conv_t;

struct conv_bf16 {
    const float *w;       /* the kernel [Cout][Cin][3][3], fp32 */
    pthread_mutex_t lock; /* the stream and the cache */
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    conv_t convs[MAX_CONVS];
    int n_convs;
};

conv_bf16_t *conv3x3s2_bf16_new(const float *w)
{
    conv_bf16_t *g = xcalloc(1, sizeof *g);
    g->w = w;
    pthread_mutex_init(&g->lock, NULL);
    DNNL_OK(dnnl_engine_create(&g->eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&g->stream, g->eng, dnnl_stream_default_flags));
    return g;
}

static void md_4d(dnnl_memory_desc_t *md, int a, int b, int c, int d, dnnl_data_type_t dt, dnnl_format_tag_t tag)
{
    const dnnl_dims_t dims = { a, b, c, d };
    DNNL_OK(dnnl_memory_desc_init_by_tag(md, 4, dims, dt, tag));
}

static dnnl_primitive_t reorder_prim(const conv_bf16_t *g, const dnnl_memory_desc_t *from,
                                     const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_reorder_primitive_desc_create(&pd, from, g->eng, to, g->eng, NULL));
    dnnl_primitive_t p;
    DNNL_OK(dnnl_primitive_create(&p, pd));
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static void run_reorder(const conv_bf16_t *g, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
    DNNL_OK(dnnl_primitive_execute(p, g->stream, 2, args));
}

static void conv_destroy(conv_t *c)
{
    dnnl_primitive_destroy(c->conv);
    dnnl_primitive_destroy(c->to_conv);
    dnnl_primitive_destroy(c->from_conv);
    dnnl_memory_t m[] = { c->usr_src, c->usr_dst, c->src, c->dst, c->wei, c->bias };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) dnnl_memory_destroy(m[i]);
    free(c->wei_data);
}

/* The primitives for one shape of the kernel, made on first use; with g->lock held. */
static conv_t *conv_get(conv_bf16_t *g, int Cin, int Cout, int N, int Hin, int Win)
{
    for (int i = 0; i < g->n_convs; i++) {
        conv_t *c = &g->convs[i];
        if (c->Cin == Cin && c->Cout == Cout && c->N == N && c->Hin == Hin && c->Win == Win) return c;
    }
    if (g->n_convs == MAX_CONVS) { /* shapes this varied are not expected: start over */
        for (int i = 0; i < g->n_convs; i++) conv_destroy(&g->convs[i]);
        g->n_convs = 0;
    }
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1;
    dnnl_memory_desc_t usr_src, usr_dst, usr_w, src, dst, wei, bias;
    md_4d(&usr_src, N, Cin, Hin, Win, dnnl_f32, dnnl_bacd);
    md_4d(&usr_dst, N, Cout, Ho, Wo, dnnl_f32, dnnl_bacd);
    md_4d(&usr_w, Cout, Cin, 3, 3, dnnl_f32, dnnl_oihw);
    md_4d(&src, N, Cin, Hin, Win, dnnl_bf16, dnnl_format_tag_any);
    md_4d(&dst, N, Cout, Ho, Wo, dnnl_f32, dnnl_format_tag_any);
    md_4d(&wei, Cout, Cin, 3, 3, dnnl_bf16, dnnl_format_tag_any);
    const dnnl_dims_t bias_dims = { Cout };
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_a));
    const dnnl_dims_t strides = { 2, 2 }, pad = { 1, 1 };
    dnnl_convolution_desc_t desc;
    DNNL_OK(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src, &wei,
                                               &bias, &dst, strides, pad, pad));
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    dnnl_post_ops_t po;
    DNNL_OK(dnnl_post_ops_create(&po));
    DNNL_OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
    DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_post_ops_destroy(po);
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, g->eng, NULL));
    dnnl_primitive_attr_destroy(attr);
    const dnnl_memory_desc_t *csrc = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *cdst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *cwei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

    conv_t *c = &g->convs[g->n_convs++];
    *c = (conv_t){ .Cin = Cin, .Cout = Cout, .N = N, .Hin = Hin, .Win = Win,
                   .src_bytes = dnnl_memory_desc_get_size(csrc), .dst_bytes = dnnl_memory_desc_get_size(cdst) };
    DNNL_OK(dnnl_primitive_create(&c->conv, pd));
    c->to_conv = reorder_prim(g, &usr_src, csrc);
    c->from_conv = reorder_prim(g, cdst, &usr_dst);
    DNNL_OK(dnnl_memory_create(&c->usr_src, &usr_src, g->eng, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&c->usr_dst, &usr_dst, g->eng, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&c->src, csrc, g->eng, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&c->dst, cdst, g->eng, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&c->bias, &bias, g->eng, DNNL_MEMORY_NONE));
    c->wei_data = xmalloc(dnnl_memory_desc_get_size(cwei));
    DNNL_OK(dnnl_memory_create(&c->wei, cwei, g->eng, c->wei_data));
    dnnl_memory_t from;
    DNNL_OK(dnnl_memory_create(&from, &usr_w, g->eng, (void *)g->w));
    dnnl_primitive_t r = reorder_prim(g, &usr_w, cwei);
    run_reorder(g, r, from, c->wei);
    DNNL_OK(dnnl_stream_wait(g->stream));
    dnnl_primitive_destroy(r);
    dnnl_memory_destroy(from);
    dnnl_primitive_desc_destroy(pd);
    return c;
}

void conv3x3s2_bf16_free(conv_bf16_t *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_convs; i++) conv_destroy(&g->convs[i]);
    dnnl_stream_destroy(g->stream);
    dnnl_engine_destroy(g->eng);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

size_t conv3x3s2_bf16_work_bytes(conv_bf16_t *g, int Cin, int Cout, int N, int Hin, int Win)
{
    pthread_mutex_lock(&g->lock);
    const conv_t *c = conv_get(g, Cin, Cout, N, Hin, Win);
    const size_t bytes = (c->src_bytes + 63) / 64 * 64 + c->dst_bytes;
    pthread_mutex_unlock(&g->lock);
    return bytes;
}

void conv3x3s2_gelu_bf16(conv_bf16_t *g, float *out, const float *in, const float *bias, int Cin, int Cout, int N,
                         int Hin, int Win, void *work)
{
    pthread_mutex_lock(&g->lock);
    conv_t *c = conv_get(g, Cin, Cout, N, Hin, Win);
    DNNL_OK(dnnl_memory_set_data_handle(c->usr_src, (void *)in));
    DNNL_OK(dnnl_memory_set_data_handle(c->usr_dst, out));
    DNNL_OK(dnnl_memory_set_data_handle(c->src, work));
    DNNL_OK(dnnl_memory_set_data_handle(c->dst, (char *)work + (c->src_bytes + 63) / 64 * 64));
    DNNL_OK(dnnl_memory_set_data_handle(c->bias, (void *)bias));
    run_reorder(g, c->to_conv, c->usr_src, c->src);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, c->src }, { DNNL_ARG_WEIGHTS, c->wei }, { DNNL_ARG_BIAS, c->bias },
                                { DNNL_ARG_DST, c->dst } };
    DNNL_OK(dnnl_primitive_execute(c->conv, g->stream, 4, args));
    run_reorder(g, c->from_conv, c->dst, c->usr_dst);
    DNNL_OK(dnnl_stream_wait(g->stream));
    pthread_mutex_unlock(&g->lock);
}
