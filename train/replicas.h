/* replicas.h - data-parallel training over MPI ranks with bilm-tf's multi-GPU semantics
 * (docs/design.md section 9). Every rank packs the same global batch of B*N rows and
 * keeps rows [kB, (k+1)B) with their LSTM states; it draws its own candidates and dropout
 * masks; the gradients are averaged (dense: an in-place allreduce in buckets; softmax
 * rows: the union of the ranks' rows, reduced as one dense block), so that clipping and
 * Adagrad run identically everywhere and the parameters stay bit-identical.
 *
 * Built with MPI when compiled with -DELMO_MPI (make MPI=1); otherwise, and when the
 * process was not started by an MPI launcher, there is one replica and every function
 * here is the identity. */
#ifndef ELMO_REPLICAS_H
#define ELMO_REPLICAS_H

#include <stdint.h>

#include "trainer.h"

typedef struct {
    int rank, size;
    int local_size;  /* ranks on this machine (this one included) */
} Replicas;

/* Joins the MPI job when started by mpirun/srun (once; later calls return the same);
 * a rank's elmo_die then ends the whole job (MPI_Abort), so that no rank waits forever
 * for one that left. */
const Replicas *replicas_start(void);
/* 1 in an MPI build (make MPI=1). */
int replicas_have_mpi(void);
/* The replicas as started (one, rank 0, before replicas_start). */
const Replicas *replicas(void);
/* The threads a rank runs: `asked` when > 0, else this machine's cores shared by its ranks
 * (elmo_set_threads's count for all cores divided by local_size, at least 1). */
int replicas_threads(int asked);
/* 1 when this process may write files and print progress (rank 0). */
int replicas_lead(void);

/* After trainer_forward_backward: the mean over the ranks of the losses and of the
 * gradients (what bilm-tf's towers average); the softmax rows become the union of the
 * ranks' rows, in rank order of first touch. A Trainer's combine hook (trainer.h). */
void replicas_average_gradients(Trainer *t, void *ctx);
/* Waits for every rank (for measurements: `elmo bench --ranks` separates the exchange
 * from the wait for the slowest rank). */
void replicas_barrier(void);
/* Rank 0's bytes to every rank. */
void replicas_broadcast(void *data, int bytes);
/* Sums n doubles over the ranks, in place. */
void replicas_sum(double *x, int n);
/* The decisions of a step taken alike on every rank: the time becomes rank 0's clock,
 * the signal the highest any rank noted. */
void replicas_agree(double *now, int *signal);
/* Stops the job (one line, exit 2 on every rank) when any rank's parameters differ from
 * rank 0's (a CRC32C of every parameter, compared over the ranks). */
void replicas_check_identical(const BilmModel *m, long step);

/* The LSTM states and generator states of every rank, for a checkpoint: rank 0 gathers
 * (N*B rows per state, rank order; N generator states) while the others send. */
typedef struct {
    int n;                                          /* ranks */
    uint64_t *rng;                                  /* (n, 4) */
    float *c[2][ELMO_MAX_LAYERS], *h[2][ELMO_MAX_LAYERS]; /* (n*B, H) and (n*B, Hs) */
} ReplicaStates;
void replica_states_init(ReplicaStates *s, const Trainer *t, int n);
void replica_states_free(ReplicaStates *s);
/* Collective, with several replicas (one keeps its states in its trainer: checkpoint_save
 * takes NULL then): every rank calls it; only rank 0's s is filled. */
void replicas_gather_states(const Trainer *t, ReplicaStates *s);
/* This rank's share of s (as read from a checkpoint) into t. */
void replicas_take_states(Trainer *t, const ReplicaStates *s, int rank);

#endif
