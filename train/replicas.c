/* replicas.c - see replicas.h. */
#include "replicas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common.h"
#include "crc32c.h"

#ifdef ELMO_MPI
#include <mpi.h>
#endif

static Replicas the_replicas = {0, 1, 1};

const Replicas *replicas(void) { return &the_replicas; }

int replicas_lead(void) { return the_replicas.rank == 0; }

int replicas_threads(int asked) {
    if (asked > 0 || the_replicas.local_size == 1) return asked;
    const int shared = omp_get_num_procs() / the_replicas.local_size;
    return shared > 0 ? shared : 1;
}

void replica_states_init(ReplicaStates *s, const Trainer *t, int n) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->rng = xcalloc((size_t)n * 4, sizeof *s->rng);
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++) {
            s->c[d][l] = xcalloc((size_t)n * t->B * t->dims.H, sizeof(float));
            s->h[d][l] = xcalloc((size_t)n * t->B * t->dims.Hs, sizeof(float));
        }
}

void replica_states_free(ReplicaStates *s) {
    free(s->rng);
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < ELMO_MAX_LAYERS; l++) {
            free(s->c[d][l]);
            free(s->h[d][l]);
        }
    memset(s, 0, sizeof *s);
}

void replicas_take_states(Trainer *t, const ReplicaStates *s, int rank) {
    memcpy(t->rng.s, s->rng + 4 * rank, sizeof t->rng.s);
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++) {
            const size_t c = (size_t)t->B * t->dims.H, h = (size_t)t->B * t->dims.Hs;
            memcpy(t->c_state[d][l], s->c[d][l] + rank * c, c * sizeof(float));
            memcpy(t->h_state[d][l], s->h[d][l] + rank * h, h * sizeof(float));
        }
}

#ifndef ELMO_MPI

int replicas_have_mpi(void) { return 0; }
const Replicas *replicas_start(void) { return &the_replicas; }
void replicas_average_gradients(Trainer *t, void *ctx) {}
void replicas_barrier(void) {}
void replicas_broadcast(void *data, int bytes) {}
void replicas_sum(double *x, int n) {}
void replicas_agree(double *now, int *signal) {}
void replicas_check_identical(const BilmModel *m, long step) {}
void replicas_gather_states(const Trainer *t, ReplicaStates *s) { CHECK(0, "one replica has nothing to gather"); }

#else

/* Dense gradients travel in buckets of this many floats (64 MiB): few enough calls that
 * latency does not count, small enough that a bucket's reduction pipelines. */
#define BUCKET_FLOATS ((size_t)16 << 20)

int replicas_have_mpi(void) { return 1; }

/* Sums n floats over the ranks in place, a bucket at a time. */
static void sum_floats(float *x, size_t n) {
    for (size_t done = 0; done < n; done += BUCKET_FLOATS) {
        const size_t part = n - done < BUCKET_FLOATS ? n - done : BUCKET_FLOATS;
        MPI_Allreduce(MPI_IN_PLACE, x + done, (int)part, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

/* Per-rank arrays (made when the job is joined) and the softmax's union block (grown,
 * never shrunk), so that the steps allocate nothing once the largest has been seen. */
static struct {
    int *counts, *displs;
    uint32_t *crcs;
    int32_t *ids, *order;
    size_t ids_cap, order_cap;
    float *block;
    size_t block_cap;
} scratch;

/* Started by a launcher: Open MPI's mpirun, or PMI/PMIx (srun, other MPIs' launchers). */
static int under_launcher(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static void abort_job(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Abort(MPI_COMM_WORLD, ELMO_EXIT_FAILURE);
}

static void finish_job(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

const Replicas *replicas_start(void) {
    static int started;
    if (started || !under_launcher()) return &the_replicas;
    started = 1;
    int provided;
    /* threads of a rank (OpenMP, OpenBLAS) never call MPI: only the main thread does */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        elmo_die("MPI: cannot join the job (MPI_Init_thread failed)");
    MPI_Comm_rank(MPI_COMM_WORLD, &the_replicas.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &the_replicas.size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &the_replicas.local_size);
    MPI_Comm_free(&node);
    scratch.counts = xcalloc((size_t)the_replicas.size, sizeof *scratch.counts);
    scratch.displs = xcalloc((size_t)the_replicas.size, sizeof *scratch.displs);
    scratch.crcs = xcalloc((size_t)the_replicas.size, sizeof *scratch.crcs);
    if (the_replicas.rank > 0) { /* rank 0 speaks for the job; the others only of their errors */
        char prefix[64];
        snprintf(prefix, sizeof prefix, "elmo: rank %d: ", the_replicas.rank);
        elmo_errors_only(prefix);
    }
    /* an error on one rank ends every rank at once instead of leaving them in a collective */
    at_quick_exit(abort_job);
    atexit(finish_job);
    return &the_replicas;
}

static void *grown(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    *cap = need + need / 2;
    return xrealloc(p, *cap * elem);
}

/* Sums a row-sparse gradient over the ranks; afterwards g holds the union of the ranks'
 * rows (rank order, then each rank's order of first touch) with their summed gradients
 * multiplied by scale. */
static void combine_sparse(SparseGrad *g, float scale) {
    const int N = the_replicas.size, w = g->width;
    MPI_Allgather(&g->n, 1, MPI_INT, scratch.counts, 1, MPI_INT, MPI_COMM_WORLD);
    size_t total = 0;
    for (int k = 0; k < N; k++) {
        scratch.displs[k] = (int)total;
        total += (size_t)scratch.counts[k];
    }
    if (total > (size_t)INT32_MAX) elmo_die("MPI: %zu softmax rows in one step exceed a message", total);
    scratch.ids = grown(scratch.ids, &scratch.ids_cap, total ? total : 1, sizeof(int32_t));
    MPI_Allgatherv(g->rows, g->n, MPI_INT32_T, scratch.ids, scratch.counts, scratch.displs, MPI_INT32_T,
                   MPI_COMM_WORLD);
    /* the union, the same on every rank, and this rank's rows of it as a dense block */
    scratch.order = grown(scratch.order, &scratch.order_cap, total ? total : 1, sizeof(int32_t));
    const size_t most = total < (size_t)g->n_total_rows ? total : (size_t)g->n_total_rows; /* rows of the union */
    scratch.block = grown(scratch.block, &scratch.block_cap, most * w + 1, sizeof(float));
    const int U = sparse_grad_to_union(g, scratch.ids, total, scratch.order, scratch.block);
    sum_floats(scratch.block, (size_t)U * w);
    sparse_grad_from_union(g, scratch.order, U, scratch.block, scale);
}

void replicas_average_gradients(Trainer *t, void *ctx) {
    const int N = the_replicas.size;
    if (N == 1) return;
    const float scale = 1.0f / (float)N;
    double losses[2] = {t->loss[0], t->loss[1]};
    MPI_Allreduce(MPI_IN_PLACE, losses, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    t->loss[0] = losses[0] / N;
    t->loss[1] = losses[1] / N;
    if (!t->softmax_only) { /* a frozen biLM has no dense gradient to average */
        sum_floats(t->grad, t->n_dense);
#pragma omp parallel for simd if (t->n_dense > 65536) schedule(static)
        for (size_t i = 0; i < t->n_dense; i++) t->grad[i] *= scale;
    }
    combine_sparse(&t->grad_softmax_W, scale);
    combine_sparse(&t->grad_softmax_b, scale);
}

void replicas_barrier(void) {
    if (the_replicas.size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void replicas_broadcast(void *data, int bytes) {
    if (the_replicas.size > 1) MPI_Bcast(data, bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
}

void replicas_sum(double *x, int n) {
    if (the_replicas.size > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void replicas_agree(double *now, int *signal) {
    if (the_replicas.size == 1) return;
    double v[2] = {the_replicas.rank == 0 ? *now : -INFINITY, (double)*signal};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    *now = v[0];
    *signal = (int)v[1];
}

void replicas_check_identical(const BilmModel *m, long step) {
    const int N = the_replicas.size;
    if (N == 1) return;
    uint32_t mine = crc32c(m->data, m->n_floats * sizeof(float)), *all = scratch.crcs;
    MPI_Allgather(&mine, 1, MPI_UINT32_T, all, 1, MPI_UINT32_T, MPI_COMM_WORLD);
    for (int k = 1; k < N; k++)
        if (all[k] != all[0])
            elmo_die("MPI: the parameters of rank %d differ from rank 0's after batch %ld (CRC32C %08x, rank 0 "
                     "%08x): the replicas drifted apart",
                     k, step, all[k], all[0]);
}

void replicas_gather_states(const Trainer *t, ReplicaStates *s) {
    CHECK(the_replicas.size > 1, "one replica has nothing to gather");
    const int root = the_replicas.rank == 0;
    MPI_Gather(t->rng.s, 4, MPI_UINT64_T, root ? s->rng : NULL, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++) {
            const int c = t->B * t->dims.H, h = t->B * t->dims.Hs;
            MPI_Gather(t->c_state[d][l], c, MPI_FLOAT, root ? s->c[d][l] : NULL, c, MPI_FLOAT, 0, MPI_COMM_WORLD);
            MPI_Gather(t->h_state[d][l], h, MPI_FLOAT, root ? s->h[d][l] : NULL, h, MPI_FLOAT, 0, MPI_COMM_WORLD);
        }
}

#endif
