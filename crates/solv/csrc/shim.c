/* The few pieces of libsolv that are inline functions, macros or struct
 * fields, wrapped as plain functions for the Rust binding. Everything else
 * is called directly. Kept deliberately tiny: no logic lives here. */

#include <stdio.h>
#include <solv/pool.h>
#include <solv/repo.h>
#include <solv/repo_rpmmd.h>
#include <solv/solver.h>
#include <solv/transaction.h>
#include <solv/solv_xfopen.h>
#include <solv/bitmap.h>
#include <solv/knownid.h>
#include <solv/util.h>

int rs_pool_disttype(const Pool *pool) { return pool->disttype; }

int rs_pool_nsolvables(const Pool *pool) { return pool->nsolvables; }

Repo *rs_solvable_repo(const Pool *pool, Id p) { return pool->solvables[p].repo; }

int rs_whatprovides_count(Pool *pool, Id dep)
{
  int n = 0;
  Id *pp = pool_whatprovides_ptr(pool, dep);
  while (*pp++)
    n++;
  return n;
}

void rs_queue_push(Queue *q, Id v) { queue_push(q, v); }

const Queue *rs_transaction_steps(const Transaction *t) { return &t->steps; }

/* Loads an rpm-md primary or filelists file, compressed or not. Returns 0,
 * or -1 with errno set when the file cannot be opened, or libsolv's error. */
int rs_repo_add_rpmmd_path(Repo *repo, const char *path, int flags)
{
  FILE *fp = solv_xfopen(path, "r");
  int r;
  if (!fp)
    return -1;
  r = repo_add_rpmmd(repo, fp, 0, flags);
  fclose(fp);
  return r ? -2 : 0;
}

/* Takes solvable p out of consideration (excludes, as dnf does). */
void rs_pool_exclude(Pool *pool, Id p)
{
  if (!pool->considered)
    {
      pool->considered = solv_calloc(1, sizeof(Map));
      map_init(pool->considered, pool->nsolvables);
      map_setall(pool->considered);
    }
  map_grow(pool->considered, pool->nsolvables);
  MAPCLR(pool->considered, p);
}

const char *rs_solvable_name(Pool *pool, Id p) { return pool_lookup_str(pool, p, SOLVABLE_NAME); }
const char *rs_solvable_evr(Pool *pool, Id p) { return pool_lookup_str(pool, p, SOLVABLE_EVR); }
const char *rs_solvable_arch(Pool *pool, Id p) { return pool_lookup_str(pool, p, SOLVABLE_ARCH); }

const char *rs_solvable_location(Pool *pool, Id p)
{
  return solvable_lookup_location(pool->solvables + p, 0);
}

const char *rs_solvable_checksum(Pool *pool, Id p, Id *type)
{
  return solvable_lookup_checksum(pool->solvables + p, SOLVABLE_CHECKSUM, type);
}

unsigned long long rs_solvable_downloadsize(Pool *pool, Id p)
{
  return solvable_lookup_num(pool->solvables + p, SOLVABLE_DOWNLOADSIZE, 0);
}

int rs_solvable_is_installable(Pool *pool, Id p)
{
  Solvable *s = pool->solvables + p;
  return s->repo && pool_installable(pool, s);
}
