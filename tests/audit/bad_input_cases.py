"""Cases for bad_input_harness.py: (name, code) pairs run under torch and jitgrad (M: the module,
F: its nn.functional, LA: its linalg, T(ndarray): a tensor; the result goes in ``r``)."""
P = """
x = T(np.arange(12, dtype=np.float32).reshape(3, 4))
x64 = T(np.arange(12, dtype=np.float64).reshape(3, 4))
xi = T(np.arange(12, dtype=np.int64).reshape(3, 4))
v = T(np.arange(5, dtype=np.float32))
i64 = lambda l: T(np.array(l, dtype=np.int64))
i32 = lambda l: T(np.array(l, dtype=np.int32))
f32 = lambda l: T(np.array(l, dtype=np.float32))
f64 = lambda l: T(np.array(l, dtype=np.float64))
bo = lambda l: T(np.array(l, dtype=bool))
e = T(np.zeros((0,), np.float32))
s = T(np.array(2.0, np.float32))
img = T(np.arange(2*3*5*5, dtype=np.float32).reshape(2, 3, 5, 5) / 10)
"""
C = []
def c(name, code):
    C.append((name, P + code))

# ---------------- indexing
for nm, idx in [("oob", "i64([[0, 4], [1, 2], [0, 0]])"), ("neg", "i64([[0, -1], [1, 2], [0, 0]])"),
                ("float", "f32([[0, 1], [1, 2], [0, 0]])"), ("int32", "i32([[0, 1], [1, 2], [0, 0]])"),
                ("bool", "bo([[True, False], [False, True], [True, True]])"),
                ("rank", "i64([0, 1])"), ("bigrow", "i64([[0, 1]] * 4)"), ("empty", "T(np.zeros((0, 2), np.int64))"),
                ("huge", "i64([[0, 2**40], [1, 2], [0, 0]])")]:
    c(f"gather_{nm}", f"r = M.gather(x, 1, {idx})")
c("gather_baddim", "r = M.gather(x, 2, i64([[0]]))")
c("gather_0d", "r = M.gather(s, 0, i64(0))")
c("gather_0d_oob", "r = M.gather(s, 0, i64(1))")
c("gather_0d_idx_1d", "r = M.gather(s, 0, i64([0, 0]))")
c("gather_dim0_oob", "r = M.gather(x, 0, i64([[3, 0, 0, 0]]))")
c("gather_int_input_oob", "r = M.gather(xi, 1, i64([[5]]))")
for nm, idx in [("oob", "i64([0, 12])"), ("neg", "i64([-1, -12])"), ("negoob", "i64([-13])"), ("float", "f32([0.0])"),
                ("int32", "i32([1, 2])"), ("bool", "bo([True])"), ("empty", "T(np.zeros((0,), np.int64))"), ("0d", "i64(3)")]:
    c(f"take_{nm}", f"r = M.take(x, {idx})")
c("take_int_oob", "r = M.take(xi, i64([100]))")
c("take_empty_input", "r = M.take(e, i64([0]))")
for nm, code in [("oob", "M.take_along_dim(x, i64([[0, 4]]), 1)"), ("neg", "M.take_along_dim(x, i64([[0, -1]]), 1)"),
                 ("nodim_oob", "M.take_along_dim(x, i64([12]))"), ("nodim_neg", "M.take_along_dim(x, i64([-1]))"),
                 ("float", "M.take_along_dim(x, f32([[0]]), 1)"), ("int32", "M.take_along_dim(x, i32([[0]]), 1)"),
                 ("rank", "M.take_along_dim(x, i64([0]), 1)"), ("bcast_bad", "M.take_along_dim(x, i64([[0],[1]]), 1)"),
                 ("baddim", "M.take_along_dim(x, i64([[0]]), 3)")]:
    c(f"take_along_dim_{nm}", f"r = {code}")
for nm, code in [("oob", "M.index_select(x, 1, i64([4]))"), ("neg", "M.index_select(x, 1, i64([-1]))"),
                 ("float", "M.index_select(x, 1, f32([0]))"), ("int32", "M.index_select(x, 1, i32([0, 3]))"),
                 ("2d", "M.index_select(x, 1, i64([[0]]))"), ("0d", "M.index_select(x, 1, i64(2))"),
                 ("baddim", "M.index_select(x, 2, i64([0]))"), ("0d_input", "M.index_select(s, 0, i64([0]))"),
                 ("0d_input_oob", "M.index_select(s, 0, i64([1]))"), ("int_oob", "M.index_select(xi, 0, i64([3]))"),
                 ("empty_input", "M.index_select(T(np.zeros((0, 3), np.float32)), 0, i64([0]))")]:
    c(f"index_select_{nm}", f"r = {code}")
src = "T(np.ones((3, 4), np.float32))"
for op in ["scatter", "scatter_add"]:
    for nm, idx in [("oob", "i64([[0, 4], [1, 2], [0, 0]])"), ("neg", "i64([[0, -1], [1, 2], [0, 0]])"),
                    ("float", "f32([[0, 1]])"), ("int32", "i32([[0, 1]])"), ("idx_bigger_src", "i64([[0, 1, 2, 3, 0]])"),
                    ("idx_bigger_self", "i64([[0]] * 4)"), ("rank", "i64([0, 1])"), ("empty", "T(np.zeros((0, 2), np.int64))")]:
        c(f"{op}_{nm}", f"r = M.{op}(x, 1, {idx}, {src})")
    c(f"{op}_int_oob", f"r = M.{op}(xi, 1, i64([[7]]), T(np.ones((1,1), np.int64)))")
    c(f"{op}_dtype_mismatch", f"r = M.{op}(x, 1, i64([[0]]), x64)")
    c(f"{op}_0d", f"r = M.{op}(s, 0, i64(0), T(np.array(5., np.float32)))")
    c(f"{op}_0d_oob", f"r = M.{op}(s, 0, i64(1), T(np.array(5., np.float32)))")
c("scatter_value_oob", "r = M.scatter(x, 1, i64([[9]]), value=2.0)")
c("scatter_reduce_bad", "r = M.scatter(x, 1, i64([[0]]), " + src + ", reduce='max')")
c("scatter_inplace_oob", "y = x.clone(); y.scatter_(1, i64([[4]]), " + src + "); r = y")
c("scatter_add_inplace_oob", "y = x.clone(); y.scatter_add_(1, i64([[-1]]), " + src + "); r = y")
for red in ["sum", "prod", "mean", "amax", "amin"]:
    c(f"scatter_reduce_{red}_oob", f"r = M.scatter_reduce(x, 1, i64([[4]]), {src}, '{red}')")
    c(f"scatter_reduce_{red}_neg", f"r = M.scatter_reduce(x, 1, i64([[-1]]), {src}, '{red}')")
    c(f"scatter_reduce_{red}_int_oob", f"r = M.scatter_reduce(xi, 1, i64([[4]]), T(np.ones((3,4), np.int64)), '{red}')")
    c(f"index_reduce_{red}_oob", f"r = M.index_reduce(x, 0, i64([3]), T(np.ones((1, 4), np.float32)), '{red}')")
c("scatter_reduce_badname", f"r = M.scatter_reduce(x, 1, i64([[0]]), {src}, 'max')")
c("scatter_reduce_float", f"r = M.scatter_reduce(x, 1, f32([[0]]), {src}, 'sum')")
for op, extra in [("index_add", "T(np.ones((1, 4), np.float32))"), ("index_copy", "T(np.ones((1, 4), np.float32))"),
                  ("index_fill", "3.0")]:
    for nm, idx in [("oob", "i64([3])"), ("neg", "i64([-1])"), ("float", "f32([0])"), ("int32", "i32([0])"),
                    ("2d", "i64([[0]])"), ("bool", "bo([True])")]:
        c(f"{op}_{nm}", f"r = M.{op}(x, 0, {idx}, {extra})")
    c(f"{op}_int_oob", f"r = M.{op}(xi, 0, i64([5]), " + ("T(np.ones((1,4), np.int64))" if extra != "3.0" else "3") + ")")
c("index_add_srcshape", "r = M.index_add(x, 0, i64([0]), T(np.ones((1, 3), np.float32)))")
c("index_add_srclen", "r = M.index_add(x, 0, i64([0, 1]), T(np.ones((1, 4), np.float32)))")
c("index_copy_srclen", "r = M.index_copy(x, 0, i64([0, 1]), T(np.ones((1, 4), np.float32)))")
c("index_add_0d", "r = M.index_add(s, 0, i64([0]), T(np.array([3.], np.float32)))")
c("index_add_0d_oob", "r = M.index_add(s, 0, i64([1]), T(np.array([3.], np.float32)))")
c("index_fill_0d_oob", "r = M.index_fill(s, 0, i64([1]), 3.0)")
c("index_fill_tensor_value_1d", "r = M.index_fill(x, 0, i64([0]), f32([1.0]))")
c("index_add_inplace_oob", "y = x.clone(); y.index_add_(1, i64([4]), T(np.ones((3, 1), np.float32))); r = y")
c("index_copy_inplace_neg", "y = x.clone(); y.index_copy_(1, i64([-5]), T(np.ones((3, 1), np.float32))); r = y")
c("index_fill_inplace_oob", "y = x.clone(); y.index_fill_(1, i64([4]), 1.0); r = y")
for nm, code in [("oob", "M.index_put(x, (i64([3]),), f32([1.0]))"), ("neg", "M.index_put(x, (i64([-1]),), f32([1.0]))"),
                 ("negoob", "M.index_put(x, (i64([-4]),), f32([1.0]))"), ("2idx_oob", "M.index_put(x, (i64([0]), i64([4])), f32([1.0]))"),
                 ("float", "M.index_put(x, (f32([0]),), f32([1.0]))"), ("int32", "M.index_put(x, (i32([0]),), f32([1.0]))"),
                 ("bool_mask_shape", "M.index_put(x, (bo([True, False]),), f32([1.0]))"),
                 ("bool_ok", "M.index_put(x, (bo([True, False, True]),), f32([1.0]))"),
                 ("too_many", "M.index_put(x, (i64([0]), i64([0]), i64([0])), f32([1.0]))"),
                 ("vals_shape", "M.index_put(x, (i64([0, 1]),), f32([1.0, 2.0, 3.0]))"),
                 ("acc_oob", "M.index_put(x, (i64([3]),), f32([1.0]), accumulate=True)"),
                 ("acc_neg", "M.index_put(x, (i64([-1]),), f32([1.0]), accumulate=True)"),
                 ("int_oob", "M.index_put(xi, (i64([3]),), i64([1]))"),
                 ("int_acc_oob", "M.index_put(xi, (i64([7]),), i64([1]), accumulate=True)"),
                 ("idx_bcast_bad", "M.index_put(x, (i64([0, 1]), i64([0, 1, 2])), f32([1.0]))"),
                 ("dtype_vals", "M.index_put(x, (i64([0]),), f64([1.0]))"),
                 ("inplace_oob", "M.index_put_(x.clone(), (i64([9]),), f32([1.0]))")]:
    c(f"index_put_{nm}", f"r = {code}")
for nm, code in [("mask_shape", "M.masked_fill(x, bo([True, False]), 1.0)"), ("mask_float", "M.masked_fill(x, f32([1.0, 0, 0, 1]), 1.0)"),
                 ("mask_int", "M.masked_fill(x, i64([1, 0, 0, 1]), 1.0)"), ("value_1d", "M.masked_fill(x, bo([True, False, True, False]), f32([1.0]))"),
                 ("value_2el", "M.masked_fill(x, bo([True, False, True, False]), f32([1.0, 2.0]))"),
                 ("inplace_bcast_self", "M.masked_fill_(x[0].clone(), bo([[True, False, True, False]] * 3), 1.0)"),
                 ("sel_shape", "M.masked_select(x, bo([True, False]))"), ("sel_float", "M.masked_select(x, f32([1.0, 0, 0, 1]))"),
                 ("scatter_short", "M.masked_scatter(x, bo([True] * 4), f32([1.0, 2.0]))"),
                 ("scatter_shape", "M.masked_scatter(x, bo([True] * 3), f32([1.0] * 12))"),
                 ("scatter_float", "M.masked_scatter(x, f32([1.0] * 4), f32([1.0] * 12))"),
                 ("scatter_dtype", "M.masked_scatter(x, bo([True] * 4), f64([1.0] * 12))"),
                 ("scatter_inplace_short", "M.masked_scatter_(x.clone(), bo([True] * 4), f32([1.0]))")]:
    c(f"masked_{nm}", f"r = {code}")
c("nonzero_static_neg", "r = M.nonzero_static(x, size=-1)")
c("nonzero_static_small", "r = M.nonzero_static(x, size=2)")
c("nonzero_static_0d", "r = M.nonzero_static(s, size=3)")
c("argwhere_0d", "r = M.argwhere(s)")
ss = "f32([1.0, 3.0, 5.0, 7.0])"
for nm, code in [("sorter_oob", f"M.searchsorted({ss}, f32([2.0]), sorter=i64([0, 1, 2, 4]))"),
                 ("sorter_neg", f"M.searchsorted({ss}, f32([2.0]), sorter=i64([0, 1, 2, -1]))"),
                 ("sorter_short", f"M.searchsorted({ss}, f32([2.0]), sorter=i64([0, 1]))"),
                 ("sorter_float", f"M.searchsorted({ss}, f32([2.0]), sorter=f32([0, 1, 2, 3]))"),
                 ("sorter_int32", f"M.searchsorted({ss}, f32([2.0]), sorter=i32([0, 1, 2, 3]))"),
                 ("side_conflict", f"M.searchsorted({ss}, f32([2.0]), right=False, side='right')"),
                 ("side_bad", f"M.searchsorted({ss}, f32([2.0]), side='middle')"),
                 ("batch_mismatch", f"M.searchsorted(x, f32([[2.0]] * 2))"),
                 ("batch_mismatch2", f"M.searchsorted(x, f32([2.0]))"),
                 ("0d_seq", f"M.searchsorted(s, f32([2.0]))"),
                 ("0d_val", f"M.searchsorted({ss}, s)"),
                 ("empty_seq", f"M.searchsorted(e, f32([2.0]))"),
                 ("dtype_mix", f"M.searchsorted({ss}, f64([2.0]))"),
                 ("int_seq", f"M.searchsorted(i64([1, 3, 5]), f32([2.0]))"),
                 ("nan", f"M.searchsorted(f32([1.0, 3.0, float('nan')]), f32([float('nan'), 2.0, float('inf')]))"),
                 ("scalar_val", f"M.searchsorted({ss}, 4)"),
                 ("bucketize_2d", f"M.bucketize(f32([2.0]), x)"),
                 ("bucketize_0d", f"M.bucketize(f32([2.0]), s)"),
                 ("bucketize_nan", f"M.bucketize(f32([float('nan'), 0.0]), {ss})")]:
    c(f"searchsorted_{nm}", f"r = {code}")

# ---------------- creation / random
for nm, code in [("multinomial_neg_prob", "M.multinomial(f32([0.5, -0.1, 0.6]), 1)"),
                 ("multinomial_zero_sum", "M.multinomial(f32([0.0, 0.0]), 1)"),
                 ("multinomial_too_many", "M.multinomial(f32([0.5, 0.5]), 3)"),
                 ("multinomial_neg_n", "M.multinomial(f32([0.5, 0.5]), -1)"),
                 ("multinomial_zero_n", "M.multinomial(f32([0.5, 0.5]), 0)"),
                 ("multinomial_nan", "M.multinomial(f32([float('nan'), 0.5]), 1)"),
                 ("multinomial_inf", "M.multinomial(f32([float('inf'), 0.5]), 1)"),
                 ("multinomial_int", "M.multinomial(i64([1, 2]), 1)"),
                 ("multinomial_0d", "M.multinomial(s, 1)"),
                 ("multinomial_3d", "M.multinomial(T(np.ones((2, 2, 2), np.float32)), 1)"),
                 ("multinomial_empty", "M.multinomial(e, 1)"),
                 ("multinomial_too_many_nonzero", "M.multinomial(f32([0.5, 0.0, 0.5]), 3)"),
                 ("multinomial_onehot_repl", "M.multinomial(f32([0.0, 1.0, 0.0]), 4, replacement=True)"),
                 ("multinomial_onehot", "M.multinomial(f32([0.0, 1.0, 0.0]), 1)"),
                 ("multinomial_float_n", "M.multinomial(f32([0.5, 0.5]), 1.5)"),
                 ("bernoulli_p_gt1", "M.bernoulli(f32([0.5, 1.5]))"), ("bernoulli_p_neg", "M.bernoulli(f32([-0.5]))"),
                 ("bernoulli_p_nan", "M.bernoulli(f32([float('nan')]))"), ("bernoulli_int", "M.bernoulli(i64([0, 1]))"),
                 ("bernoulli_scalar_p_bad", "M.bernoulli(f32([0.5]), p=2.0)"),
                 ("bernoulli_ones", "M.bernoulli(f32([1.0, 0.0]))"),
                 ("bernoulli__p_bad", "f32([0.5]).bernoulli_(2.0)"),
                 ("normal_neg_std", "M.normal(0.0, -1.0, size=(2,))"), ("normal_tensor_neg_std", "M.normal(f32([0.0]), f32([-1.0]))"),
                 ("normal_nan_std", "M.normal(0.0, float('nan'), size=(2,))"),
                 ("normal_neg_size", "M.normal(0.0, 1.0, size=(-1,))"),
                 ("normal_shape_mismatch", "M.normal(f32([0.0, 1.0]), f32([1.0, 1.0, 1.0]))"),
                 ("normal_zero_std", "M.normal(f32([3.0]), 0.0)"),
                 ("normal_int_mean", "M.normal(i64([0]), 1.0)"),
                 ("normal__neg", "f32([0.0]).normal_(0, -1)"),
                 ("uniform__rev", "f32([0.0]).uniform_(2, 1)"),
                 ("exponential__neg", "f32([0.0]).exponential_(-1.0)"),
                 ("geometric__bad", "f32([0.0]).geometric_(1.5)"), ("geometric__zero", "f32([0.0]).geometric_(0.0)"),
                 ("cauchy__neg", "f32([0.0]).cauchy_(0.0, -1.0)"),
                 ("log_normal__neg", "f32([0.0]).log_normal_(0.0, -1.0)"),
                 ("tril_indices_neg", "M.tril_indices(-1, 3)"), ("tril_indices_negcol", "M.tril_indices(3, -2)"),
                 ("tril_indices_bigoff", "M.tril_indices(3, 3, 10)"), ("tril_indices_negoff", "M.tril_indices(3, 3, -10)"),
                 ("triu_indices_neg", "M.triu_indices(-1, 3)"), ("triu_indices_bigoff", "M.triu_indices(3, 4, -10)"),
                 ("tril_indices_zero", "M.tril_indices(0, 0)"), ("tril_indices_float_dtype", "M.tril_indices(3, 3, dtype=M.float32)"),
                 ("tril_indices_int32", "M.tril_indices(3, 3, dtype=M.int32)"),
                 ("randint_empty_range", "M.randint(3, 3, (2,))"), ("randint_rev", "M.randint(5, 3, (2,))"),
                 ("randint_neg_size", "M.randint(0, 3, (-2,))"), ("randint_uint8_range", "M.randint(0, 300, (2,), dtype=M.uint8)"),
                 ("randperm_neg", "M.randperm(-1)"), ("randperm_zero", "M.randperm(0)"),
                 ("arange_zero_step", "M.arange(0, 5, 0)"), ("arange_wrong_sign", "M.arange(0, 5, -1)"),
                 ("arange_nan", "M.arange(0, float('nan'))"), ("arange_inf", "M.arange(0, float('inf'))"),
                 ("linspace_neg", "M.linspace(0, 1, -1)"), ("logspace_neg", "M.logspace(0, 1, -1)"),
                 ("eye_neg", "M.eye(-1)"), ("eye_negm", "M.eye(2, -1)"),
                 ("ones_neg", "M.ones(2, -1)"), ("empty_neg", "M.empty(-1)"),
                 ("full_like_bad", "M.full_like(xi, 2.5)"),
                 ("empty_strided_neg", "M.empty_strided((2, 2), (-1, 1))"),
                 ("empty_strided_rank", "M.empty_strided((2, 2), (1,))"),
                 ("empty_permuted_bad", "M.empty_permuted((2, 3), (0, 0))"),
                 ("randint_like_bad", "M.randint_like(x, 5, 2)"),
                 ("scalar_tensor_str", "M.scalar_tensor('a')")]:
    c(nm, f"M.manual_seed(0); r = {code}")

# ---------------- shape
for nm, code in [("repeat_neg", "x.repeat(2, -1)"), ("repeat_fewer", "x.repeat(2)"), ("repeat_zero", "x.repeat(0, 2)"),
                 ("tile_neg", "M.tile(x, (2, -1))"), ("tile_zero", "M.tile(x, (0,))"), ("tile_empty", "M.tile(x, ())"),
                 ("ri_neg", "M.repeat_interleave(x, -1)"), ("ri_neg_t", "M.repeat_interleave(v, i64([1, -1, 1, 1, 1]))"),
                 ("ri_len", "M.repeat_interleave(v, i64([1, 2]))"), ("ri_float", "M.repeat_interleave(v, f32([1, 2, 1, 1, 1]))"),
                 ("ri_int32", "M.repeat_interleave(v, i32([1, 2, 1, 1, 1]))"), ("ri_2d_rep", "M.repeat_interleave(v, i64([[1, 2, 1, 1, 1]]))"),
                 ("ri_baddim", "M.repeat_interleave(x, 2, dim=2)"), ("ri_only_neg", "M.repeat_interleave(i64([1, -2]))"),
                 ("ri_only_2d", "M.repeat_interleave(i64([[1, 2]]))"), ("ri_only_float", "M.repeat_interleave(f32([1, 2]))"),
                 ("ri_outsize_wrong", "M.repeat_interleave(v, i64([1, 1, 1, 1, 1]), output_size=3)"),
                 ("ri_0d", "M.repeat_interleave(s, 3)"), ("ri_0d_tensor", "M.repeat_interleave(v, i64(2))"),
                 ("narrow_oob", "M.narrow(x, 1, 2, 5)"), ("narrow_neglen", "M.narrow(x, 1, 0, -1)"), ("narrow_negstart", "M.narrow(x, 1, -2, 2)"),
                 ("narrow_start_oob", "M.narrow(x, 1, 5, 0)"), ("narrow_0d", "M.narrow(s, 0, 0, 1)"),
                 ("narrow_copy_oob", "M.narrow_copy(x, 0, 2, 3)"), ("narrow_tensor_start", "M.narrow(x, 1, i64(1), 2)"),
                 ("roll_mismatch", "M.roll(x, (1, 2), (0,))"), ("roll_baddim", "M.roll(x, 1, 3)"), ("roll_empty", "M.roll(e, 3)"),
                 ("roll_0d", "M.roll(s, 1)"), ("rot90_samedim", "M.rot90(x, 1, (0, 0))"), ("rot90_1d", "M.rot90(v, 1)"),
                 ("rot90_baddim", "M.rot90(x, 1, (0, 2))"), ("fliplr_1d", "M.fliplr(v)"), ("flipud_0d", "M.flipud(s)"),
                 ("movedim_dup", "M.movedim(x, (0, 0), (1, 0))"), ("movedim_len", "M.movedim(x, (0, 1), (1,))"), ("movedim_oob", "M.movedim(x, 0, 2)"),
                 ("swapaxes_oob", "M.swapaxes(x, 0, 2)"), ("unflatten_bad", "M.unflatten(x, 1, (3, 2))"), ("unflatten_two_neg", "M.unflatten(x, 1, (-1, -1))"),
                 ("unflatten_empty", "M.unflatten(x, 1, ())"),
                 ("as_strided_oob", "M.as_strided(x, (3, 4), (4, 2))"), ("as_strided_neg", "M.as_strided(x, (2,), (-1,))"),
                 ("as_strided_offset", "M.as_strided(x, (2,), (1,), 11)"), ("as_strided_negsize", "M.as_strided(x, (-2,), (1,))"),
                 ("as_strided_rank", "M.as_strided(x, (2, 2), (1,))"), ("as_strided_copy_oob", "M.as_strided_copy(x, (13,), (1,))"),
                 ("as_strided_scatter_oob", "M.as_strided_scatter(x, f32([1.0] * 13), (13,), (1,))"),
                 ("as_strided_scatter_srcshape", "M.as_strided_scatter(x, f32([1.0] * 3), (2,), (1,))"),
                 ("diagonal_samedim", "M.diagonal(x, 0, 0, 0)"), ("diagonal_bigoff", "M.diagonal(x, 10)"), ("diagonal_1d", "M.diagonal(v)"),
                 ("diag_embed_samedim", "M.diag_embed(v, 0, 0, 0)"), ("diag_embed_baddim", "M.diag_embed(v, 0, 0, 3)"),
                 ("diag_3d", "M.diag(T(np.ones((2, 2, 2), np.float32)))"), ("diag_bigoff", "M.diag(x, 10)"), ("diag_0d", "M.diag(s)"),
                 ("tril_1d", "M.tril(v)"), ("triu_0d", "M.triu(s)"), ("tril_bigoff", "M.tril(x, 100)"), ("triu_negbig", "M.triu(x, -100)"),
                 ("broadcast_shapes_bad", "M.broadcast_shapes((2, 3), (4,))"), ("broadcast_shapes_neg", "M.broadcast_shapes((-1,), (3,))"),
                 ("broadcast_tensors_bad", "M.broadcast_tensors(x, v)"), ("meshgrid_2d", "M.meshgrid(x, v, indexing='ij')"),
                 ("meshgrid_badidx", "M.meshgrid(v, v, indexing='xx')"), ("meshgrid_dtype", "M.meshgrid(v, i64([1]), indexing='ij')"),
                 ("cartesian_2d", "M.cartesian_prod(x, v)"), ("combinations_2d", "M.combinations(x)"), ("combinations_neg", "M.combinations(v, -1)"),
                 ("combinations_big_r", "M.combinations(v, 7)"),
                 ("hstack_bad", "M.hstack([x, v])"), ("vstack_bad", "M.vstack([x, v])"), ("dstack_bad", "M.dstack([x, v])"),
                 ("column_stack_bad", "M.column_stack([x, v])"), ("hstack_empty_list", "M.hstack([])"), ("block_diag_3d", "M.block_diag(T(np.ones((2,2,2), np.float32)))"),
                 ("block_diag_mixed", "M.block_diag(x, i64([[1]]))"),
                 ("tensor_split_zero", "M.tensor_split(x, 0)"), ("tensor_split_neg", "M.tensor_split(x, -2)"),
                 ("tensor_split_idx_float", "M.tensor_split(x, f32([1.0]))"), ("tensor_split_idx_2d", "M.tensor_split(x, i64([[1]]))"),
                 ("tensor_split_unsorted", "M.tensor_split(x, (3, 1))"), ("tensor_split_big", "M.tensor_split(x, (1, 100))"),
                 ("tensor_split_negidx", "M.tensor_split(x, (-1,))"),
                 ("hsplit_uneven", "M.hsplit(x, 3)"), ("vsplit_1d", "M.vsplit(v, 1)"), ("dsplit_2d", "M.dsplit(x, 1)"),
                 ("hsplit_0d", "M.hsplit(s, 1)"),
                 ("split_with_sizes_bad", "M.split_with_sizes(x, (1, 1), 0)"), ("split_with_sizes_neg", "M.split_with_sizes(x, (4, -1), 0)"),
                 ("unsafe_split_zero", "M.unsafe_split(x, 0)"), ("unsafe_chunk_zero", "M.unsafe_chunk(x, 0)"), ("unsafe_chunk_neg", "M.unsafe_chunk(x, -1)"),
                 ("select_scatter_oob", "M.select_scatter(x, f32([1.0] * 4), 0, 3)"), ("select_scatter_neg", "M.select_scatter(x, f32([1.0] * 4), 0, -1)"),
                 ("select_scatter_negoob", "M.select_scatter(x, f32([1.0] * 4), 0, -4)"),
                 ("select_scatter_shape", "M.select_scatter(x, f32([1.0] * 3), 0, 0)"),
                 ("slice_scatter_shape", "M.slice_scatter(x, f32([[1.0] * 4]), 0, 0, 3)"), ("slice_scatter_step0", "M.slice_scatter(x, x, 0, 0, 3, 0)"),
                 ("slice_scatter_negstep", "M.slice_scatter(x, x, 0, 0, 3, -1)"), ("slice_scatter_oob", "M.slice_scatter(x, x, 0, 0, 100)"),
                 ("diagonal_scatter_shape", "M.diagonal_scatter(x, f32([1.0] * 4))"), ("diagonal_scatter_samedim", "M.diagonal_scatter(x, f32([1.0] * 3), 0, 0, 0)"),
                 ("constant_pad_odd", "M.constant_pad_nd(x, (1,))"), ("constant_pad_toolong", "M.constant_pad_nd(v, (1, 1, 1, 1))"),
                 ("constant_pad_neg", "M.constant_pad_nd(v, (-3, -3))"), ("constant_pad_neg_ok", "M.constant_pad_nd(v, (-1, 2))"),
                 ("fill_1d", "M.fill(x, f32([1.0, 2.0]))"), ("fill_int_float", "M.fill(xi, 2.5)"),
                 ("unravel_oob", "M.unravel_index(i64([12]), (3, 4))"), ("unravel_neg", "M.unravel_index(i64([-1]), (3, 4))"),
                 ("unravel_negoob", "M.unravel_index(i64([-13]), (3, 4))"),
                 ("unravel_float", "M.unravel_index(f32([1.0]), (3, 4))"), ("unravel_negshape", "M.unravel_index(i64([1]), (-3, 4))"),
                 ("unravel_zero", "M.unravel_index(i64([0]), (0, 4))"),
                 ("expand_bad", "x.expand(2, 3, 5)"), ("view_bad", "x.view(5, -1)"), ("reshape_two_neg", "x.reshape(-1, -1)")]:
    c(nm, f"r = {code}")

# ---------------- reductions
for nm, code in [("topk_big", "M.topk(v, 6)"), ("topk_neg", "M.topk(v, -1)"), ("topk_0d", "M.topk(s, 1)"), ("topk_0d_k2", "M.topk(s, 2)"),
                 ("topk_empty", "M.topk(e, 0)"), ("topk_baddim", "M.topk(x, 1, 2)"), ("topk_nan", "M.topk(f32([1.0, float('nan'), 3.0]), 2)"),
                 ("kthvalue_0", "M.kthvalue(v, 0)"), ("kthvalue_big", "M.kthvalue(v, 6)"), ("kthvalue_neg", "M.kthvalue(v, -1)"),
                 ("kthvalue_0d", "M.kthvalue(s, 1)"), ("kthvalue_empty", "M.kthvalue(e, 1)"), ("kthvalue_nan", "M.kthvalue(f32([1.0, float('nan'), 0.0]), 3)"),
                 ("sort_baddim", "M.sort(x, 2)"), ("sort_0d", "M.sort(s)"), ("sort_nan", "M.sort(f32([2.0, float('nan'), 1.0, -float('inf')]))"),
                 ("argsort_nan_desc", "M.argsort(f32([2.0, float('nan'), 1.0]), descending=True)"),
                 ("msort_0d", "M.msort(s)"),
                 ("median_empty", "M.median(e)"), ("median_empty_dim", "M.median(T(np.zeros((2, 0), np.float32)), 1)"),
                 ("median_nan", "M.median(f32([1.0, float('nan'), 2.0]))"), ("nanmedian_allnan", "M.nanmedian(f32([float('nan')] * 2))"),
                 ("median_0d_dim", "M.median(s, 0)"), ("median_baddim", "M.median(x, 2)"),
                 ("mode_empty", "M.mode(e)"), ("mode_0d", "M.mode(s)"),
                 ("cummax_empty", "M.cummax(e, 0)"), ("cummax_nan", "M.cummax(f32([1.0, float('nan'), 2.0]), 0)"),
                 ("cummin_baddim", "M.cummin(x, 2)"), ("cumprod_baddim", "M.cumprod(x, -3)"), ("cumprod_0d", "M.cumprod(s, 0)"),
                 ("logcumsumexp_int", "M.logcumsumexp(xi, 0)"), ("logcumsumexp_inf", "M.logcumsumexp(f32([-float('inf'), -float('inf'), 1.0]), 0)"),
                 ("aminmax_empty", "M.aminmax(e)"), ("aminmax_empty_dim", "M.aminmax(T(np.zeros((0, 2), np.float32)), dim=0)"),
                 ("amax_empty", "M.amax(e)"), ("max_empty", "M.max(e)"), ("argmax_empty", "M.argmax(e)"),
                 ("var_mean_corr_big", "M.var_mean(v, correction=10)"), ("std_mean_empty", "M.std_mean(e)"),
                 ("var_mean_int", "M.var_mean(xi)"), ("nanmean_int", "M.nanmean(xi)"), ("nansum_int", "M.nansum(xi)"),
                 ("quantile_q_gt1", "M.quantile(v, 1.5)"), ("quantile_q_neg", "M.quantile(v, -0.1)"), ("quantile_q_tensor_bad", "M.quantile(v, f32([0.5, 2.0]))"),
                 ("quantile_q_2d", "M.quantile(v, f32([[0.5]]))"), ("quantile_empty", "M.quantile(e, 0.5)"), ("quantile_int", "M.quantile(xi, 0.5)"),
                 ("quantile_interp_bad", "M.quantile(v, 0.5, interpolation='foo')"), ("quantile_q_dtype", "M.quantile(v, f64([0.5]))"),
                 ("quantile_nan", "M.quantile(f32([1.0, float('nan')]), 0.5)"), ("nanquantile_allnan", "M.nanquantile(f32([float('nan')]), 0.5)"),
                 ("quantile_q_nan", "M.quantile(v, float('nan'))"),
                 ("unique_baddim", "M.unique(x, dim=2)"), ("unique_consec_baddim", "M.unique_consecutive(x, dim=2)"),
                 ("unique_0d", "M.unique(s, return_inverse=True, return_counts=True)"), ("unique_empty", "M.unique(e, return_counts=True)"),
                 ("unique_nan", "M.unique(f32([float('nan'), 1.0, float('nan')]))"),
                 ("count_nonzero_baddim", "M.count_nonzero(x, 2)"), ("count_nonzero_dupdim", "M.count_nonzero(x, (0, 0))"),
                 ("any_baddim", "M.any(x, 2)"), ("all_0d", "M.all(s, 0)"),
                 ("sum_dupdim", "M.sum(x, (0, 0))"), ("logsumexp_int", "M.logsumexp(xi, 0)"), ("mean_int", "M.mean(xi)"),
                 ("prod_baddim", "M.prod(x, 2)"), ("std_int", "M.std(xi)")]:
    c(nm, f"r = {code}")

# ---------------- linalg
sing = "f32([[1.0, 2.0], [2.0, 4.0]])"
sq = "f32([[4.0, 1.0], [1.0, 3.0]])"
for nm, code in [("inv_nonsq", "M.inverse(x)"), ("inv_sing", f"M.inverse({sing})"), ("linalg_inv_sing", f"LA.inv({sing})"),
                 ("inv_1d", "M.inverse(v)"), ("inv_int", "M.inverse(i64([[1, 0], [0, 1]]))"), ("inv_empty", "M.inverse(T(np.zeros((0, 0), np.float32)))"),
                 ("inv_nan", "M.inverse(f32([[float('nan'), 0.0], [0.0, 1.0]]))"),
                 ("inv_batch_sing", f"LA.inv(M.stack([{sq}, {sing}]))"),
                 ("det_nonsq", "M.det(x)"), ("det_int", "M.det(i64([[1, 0], [0, 1]]))"), ("det_sing", f"M.det({sing})"), ("det_1d", "M.det(v)"),
                 ("det_empty", "M.det(T(np.zeros((0, 0), np.float32)))"),
                 ("slogdet_sing", f"M.slogdet({sing})"), ("logdet_neg", "M.logdet(f32([[-1.0, 0.0], [0.0, 1.0]]))"),
                 ("cholesky_nonsq", "LA.cholesky(x)"), ("cholesky_notpd", "LA.cholesky(f32([[1.0, 2.0], [2.0, 1.0]]))"),
                 ("cholesky_old_notpd", "M.cholesky(f32([[1.0, 2.0], [2.0, 1.0]]))"), ("cholesky_int", "LA.cholesky(i64([[1, 0], [0, 1]]))"),
                 ("cholesky_nan", "LA.cholesky(f32([[float('nan'), 0.0], [0.0, 1.0]]))"),
                 ("solve_sing", f"LA.solve({sing}, f32([1.0, 2.0]))"), ("solve_nonsq", "LA.solve(x, f32([1.0, 2.0, 3.0]))"),
                 ("solve_shape", f"LA.solve({sq}, f32([1.0, 2.0, 3.0]))"), ("solve_dtype", f"LA.solve({sq}, f64([1.0, 2.0]))"),
                 ("solve_int", "LA.solve(i64([[1, 0], [0, 1]]), i64([1, 2]))"), ("solve_batch_bcast", f"LA.solve({sq}, T(np.ones((3, 2, 1), np.float32)))"),
                 ("solve_left_false_shape", f"LA.solve({sq}, f32([[1.0, 2.0, 3.0]]), left=False)"),
                 ("matrix_power_nonsq", "M.matrix_power(x, 2)"), ("matrix_power_sing_neg", f"M.matrix_power({sing}, -1)"),
                 ("matrix_power_1d", "M.matrix_power(v, 2)"), ("matrix_power_int_neg", "M.matrix_power(i64([[1, 0], [0, 1]]), -1)"),
                 ("eigh_nonsq", "LA.eigh(x)"), ("eigh_badUPLO", f"LA.eigh({sq}, UPLO='X')"), ("eigh_int", "LA.eigh(i64([[1, 0], [0, 1]]))"),
                 ("eigvalsh_nan", "LA.eigvalsh(f32([[float('nan'), 0.0], [0.0, 1.0]]))"),
                 ("qr_badmode", "LA.qr(x, mode='foo')"), ("qr_1d", "LA.qr(v)"), ("qr_int", "LA.qr(i64([[1, 0], [0, 1]]))"),
                 ("svd_1d", "LA.svd(v)"), ("svd_int", "LA.svd(i64([[1, 0], [0, 1]]))"), ("svd_nan", "LA.svdvals(f32([[float('nan'), 0.0], [0.0, 1.0]]))"),
                 ("svdvals_empty", "LA.svdvals(T(np.zeros((0, 3), np.float32)))"),
                 ("pinv_1d", "LA.pinv(v)"), ("pinv_int", "LA.pinv(i64([[1, 0], [0, 1]]))"),
                 ("trace_1d", "M.trace(v)"), ("trace_3d", "M.trace(T(np.ones((2, 2, 2), np.float32)))"),
                 ("cross_bad", "M.cross(f32([1.0, 2.0]), f32([1.0, 2.0]), dim=0)"), ("cross_shape", "LA.cross(f32([1.0, 2.0, 3.0]), x[:, :3])"),
                 ("cross_nodim_no3", "M.cross(x, x)"), ("cross_dtype", "LA.cross(f32([1.0, 2.0, 3.0]), f64([1.0, 2.0, 3.0]))"),
                 ("vecdot_shape", "LA.vecdot(v, f32([1.0, 2.0]))"), ("inner_shape", "M.inner(v, f32([1.0, 2.0]))"), ("vdot_2d", "M.vdot(x, x)"),
                 ("vdot_len", "M.vdot(v, f32([1.0]))"), ("vdot_dtype", "M.vdot(v, T(np.arange(5.0)))"),
                 ("kron_dtype", "M.kron(x, xi)"), ("tensordot_bad", "M.tensordot(x, x, 1)"), ("tensordot_neg", "M.tensordot(x, x, -1)"),
                 ("tensordot_dims_bad", "M.tensordot(x, x, ([0], [0, 1]))"), ("tensordot_big", "M.tensordot(x, x, 3)"),
                 ("einsum_bad", "M.einsum('ij,jk->ik', x, x)"), ("einsum_nargs", "M.einsum('ij,jk->ik', x)"), ("einsum_badout", "M.einsum('ij->k', x)"),
                 ("einsum_rank", "M.einsum('ijk->i', x)"), ("einsum_repeat_out", "M.einsum('ij->ii', x)"), ("einsum_diag_bad", "M.einsum('ii->i', x)"),
                 ("multi_dot_bad", "LA.multi_dot([x, x])"), ("multi_dot_one", "LA.multi_dot([x])"), ("multi_dot_3d", "LA.multi_dot([x, T(np.ones((4,2,2), np.float32))])"),
                 ("chain_matmul_bad", "M.chain_matmul(x, x)"),
                 ("addmm_bad", "M.addmm(x, x, x)"), ("addmm_bias_bad", "M.addmm(v, x, x.T)"), ("addmv_bad", "M.addmv(f32([1.0] * 3), x, v)"),
                 ("addr_bad", "M.addr(x, v, v)"), ("baddbmm_bad", "M.baddbmm(T(np.ones((2,3,3), np.float32)), T(np.ones((2,3,4), np.float32)), T(np.ones((2,3,3), np.float32)))"),
                 ("addbmm_batch", "M.addbmm(T(np.ones((3,3), np.float32)), T(np.ones((2,3,4), np.float32)), T(np.ones((3,4,3), np.float32)))"),
                 ("addmm_dtype", "M.addmm(T(np.ones((3,3), np.float32)), x, x64.T)"),
                 ("matmul_bad", "M.matmul(x, x)"), ("mm_dtype", "M.mm(x, xi.T)"), ("bmm_2d", "M.bmm(x, x.T)"),
                 ("vector_norm_int", "LA.vector_norm(xi)"), ("vector_norm_baddim", "LA.vector_norm(x, dim=2)"), ("vector_norm_badord", "LA.vector_norm(x, ord='fro')"),
                 ("vector_norm_neg_empty", "LA.vector_norm(e, ord=-1)"), ("vector_norm_inf_empty", "LA.vector_norm(e, ord=float('inf'))"),
                 ("matrix_norm_1d", "LA.matrix_norm(v)"), ("matrix_norm_badord", "LA.matrix_norm(x, ord=3)"), ("matrix_norm_samedim", "LA.matrix_norm(x, dim=(0, 0))"),
                 ("matrix_norm_nuc_empty", "LA.matrix_norm(T(np.zeros((0, 3), np.float32)), ord='nuc')"),
                 ("linalg_norm_3d", "LA.norm(T(np.ones((2,2,2), np.float32)), ord=2)"), ("norm_fro_1d_dim", "M.norm(v, p='fro', dim=(0, 1))"),
                 ("norm_badp", "M.norm(x, p='foo')"), ("dist_shape", "M.dist(x, v)"), ("dist_int", "M.dist(xi, xi)"),
                 ("renorm_neg_p", "M.renorm(x, -1, 0, 1.0)"), ("renorm_neg_max", "M.renorm(x, 2, 0, -1.0)"), ("renorm_baddim", "M.renorm(x, 2, 2, 1.0)"),
                 ("renorm_1d", "M.renorm(v, 2, 0, 1.0)"), ("renorm_int", "M.renorm(xi, 2, 0, 1.0)")]:
    c(nm, f"r = {code}")

# ---------------- elementwise
for nm, code in [("fmod_int_zero", "M.fmod(i64([5, -5]), 0)"), ("fmod_int_zero_t", "M.fmod(i64([5, -5]), i64([0, 1]))"),
                 ("remainder_int_zero", "M.remainder(i64([5, -5]), 0)"), ("remainder_int_zero_t", "M.remainder(i64([5]), i64([0]))"),
                 ("floor_divide_int_zero", "M.floor_divide(i64([5]), 0)"), ("floor_divide_int_zero_t", "M.floor_divide(i64([5]), i64([0]))"),
                 ("div_trunc_int_zero", "M.div(i64([5]), i64([0]), rounding_mode='trunc')"), ("div_floor_int_zero", "M.div(i64([5]), 0, rounding_mode='floor')"),
                 ("div_badmode", "M.div(x, 2, rounding_mode='round')"),
                 ("mod_op_int_zero", "i64([5]) % 0"), ("floordiv_op_int_zero", "i64([5]) // i64([0])"),
                 ("int_min_div_neg1", "M.floor_divide(i64([-2**63]), -1)"), ("int_min_rem_neg1", "M.remainder(i64([-2**63]), -1)"),
                 ("int_min_fmod_neg1", "M.fmod(i64([-2**63]), -1)"),
                 ("fmod_float_zero", "M.fmod(f32([5.0, -5.0, 0.0]), 0.0)"), ("remainder_float_zero", "M.remainder(f32([5.0, -5.0, 0.0]), 0.0)"),
                 ("remainder_inf", "M.remainder(f32([5.0, -5.0]), float('inf'))"), ("fmod_inf", "M.fmod(f32([5.0, float('inf')]), float('inf'))"),
                 ("floor_divide_float_zero", "M.floor_divide(f32([5.0, -5.0, 0.0]), 0.0)"),
                 ("bitwise_and_float", "M.bitwise_and(x, x)"), ("bitwise_or_float_int", "M.bitwise_or(x, xi)"), ("bitwise_not_float", "M.bitwise_not(x)"),
                 ("bitwise_xor_bool_int", "M.bitwise_xor(bo([True]), i64([3]))"), ("bitwise_and_int_scalar_float", "M.bitwise_and(xi, 1.5)"),
                 ("invert_float", "~x"), ("and_float", "x & x"), ("lshift_float", "x << 1"),
                 ("lshift_neg", "M.bitwise_left_shift(i64([1, 1]), i64([-1, 64]))"), ("rshift_neg", "M.bitwise_right_shift(i64([-8, 8]), i64([-1, 70]))"),
                 ("lshift_big_int32", "M.bitwise_left_shift(i32([1]), i32([40]))"),
                 ("lshift_uint8", "M.bitwise_left_shift(T(np.array([1], np.uint8)), 9)"),
                 ("bitwise_shape", "M.bitwise_and(xi, i64([1, 2]))"), ("fmod_shape", "M.fmod(x, v)"),
                 ("fmod_inplace_bcast", "x[0].clone().fmod_(x)"), ("remainder_inplace_dtype", "xi.clone().remainder_(1.5)"),
                 ("floor_divide_inplace_dtype", "xi.clone().floor_divide_(1.5)"), ("bitwise_and_inplace_bool_int", "bo([True]).bitwise_and_(i64([3]))"),
                 ("lerp_shape", "M.lerp(x, v, 0.5)"), ("lerp_dtype", "M.lerp(x, x64, 0.5)"), ("lerp_int", "M.lerp(xi, xi, 0.5)"),
                 ("lerp_weight_dtype", "M.lerp(x, x, x64)"),
                 ("addcdiv_int", "M.addcdiv(xi, xi, xi)"), ("addcmul_shape", "M.addcmul(x, x, v)"), ("addcdiv_zero", "M.addcdiv(x, x, T(np.zeros((3, 4), np.float32)))"),
                 ("xlogy_zero_nan", "M.xlogy(f32([0.0, 0.0, 1.0]), f32([float('nan'), 0.0, 0.0]))"), ("xlog1py_shape", "M.special.xlog1py(x, v)"),
                 ("logit_eps", "M.logit(f32([0.0, 1.0, 0.5, 2.0]), eps=0.1)"), ("logit_no_eps", "M.logit(f32([0.0, 1.0, 2.0]))"),
                 ("polygamma_neg_n", "M.polygamma(-1, x)"), ("polygamma_float_n", "M.polygamma(1.5, x)"), ("polygamma_int", "M.polygamma(1, xi)"),
                 ("polygamma_big", "M.polygamma(3, f32([0.0, -1.0, 0.5]))"),
                 ("digamma_poles", "M.digamma(f32([0.0, -1.0, -0.0, -2.5]))"), ("lgamma_poles", "M.lgamma(f32([0.0, -1.0, -2.5, float('inf')]))"),
                 ("erfinv_range", "M.erfinv(f32([-1.0, 1.0, 1.5, float('nan')]))"), ("erfinv_int", "M.erfinv(i64([0]))"),
                 ("nan_to_num_int", "M.nan_to_num(xi, nan=1.5)"), ("nan_to_num_f32_big", "M.nan_to_num(f32([float('inf'), -float('inf'), float('nan')]), posinf=1e300)"),
                 ("heaviside_dtype", "M.heaviside(x, x64)"), ("heaviside_scalar", "M.heaviside(x, 0.5)"),
                 ("copysign_int", "M.copysign(xi, -1)"), ("float_power_neg", "M.float_power(f32([-8.0]), 1 / 3)"),
                 ("float_power_int_neg_exp", "M.float_power(i64([2]), -1)"),
                 ("pow_int_neg_exp", "M.pow(i64([2]), -1)"), ("pow_int_neg_exp_t", "M.pow(i64([2, 0]), i64([-1, -1]))"),
                 ("clamp_min_max_reversed", "M.clamp(x, 5, 2)"), ("clamp_min_int_float", "M.clamp_min(xi, 2.5)"), ("clamp_none", "M.clamp(x)"),
                 ("sgn_int", "M.sgn(xi - 5)"), ("signbit_negzero", "M.signbit(f32([-0.0, 0.0, float('nan')]))"),
                 ("isposinf_int", "M.isposinf(xi)"), ("isreal_f", "M.isreal(x)"),
                 ("fmax_nan", "M.fmax(f32([float('nan'), 1.0]), f32([2.0, float('nan')]))"), ("fmax_shape", "M.fmax(x, v)"),
                 ("sinc_zero_inf", "M.sinc(f32([0.0, float('inf'), float('nan')]))"),
                 ("logical_or_shape", "M.logical_or(x, v)"), ("logical_xor_int", "M.logical_xor(xi, x)"),
                 ("true_divide_int_zero", "M.true_divide(i64([1, 0, -1]), 0)")]:
    c(nm, f"r = {code}")

# ---------------- nn functional extra (conv / pool / etc.)
w = "T(np.ones((4, 3, 3, 3), np.float32))"
for nm, code in [("conv2d_kernel_big", f"F.conv2d(img, T(np.ones((4, 3, 7, 7), np.float32)))"),
                 ("conv2d_stride0", f"F.conv2d(img, {w}, stride=0)"), ("conv2d_stride_neg", f"F.conv2d(img, {w}, stride=-1)"),
                 ("conv2d_pad_neg", f"F.conv2d(img, {w}, padding=-1)"), ("conv2d_dil0", f"F.conv2d(img, {w}, dilation=0)"),
                 ("conv2d_chan", f"F.conv2d(img, T(np.ones((4, 2, 3, 3), np.float32)))"), ("conv2d_groups_bad", f"F.conv2d(img, {w}, groups=2)"),
                 ("conv2d_groups0", f"F.conv2d(img, {w}, groups=0)"), ("conv2d_bias_shape", f"F.conv2d(img, {w}, bias=f32([1.0, 2.0]))"),
                 ("conv2d_3d_input_unbatched", f"F.conv2d(img[0], {w})"), ("conv2d_rank_bad", f"F.conv2d(x, {w})"),
                 ("conv2d_weight_rank", f"F.conv2d(img, T(np.ones((4, 3, 3), np.float32)))"), ("conv2d_dtype", f"F.conv2d(img, T(np.ones((4, 3, 3, 3))))"),
                 ("conv2d_int", f"F.conv2d(T(np.ones((1, 3, 5, 5), np.int64)), T(np.ones((4, 3, 3, 3), np.int64)))"),
                 ("conv2d_stride_tuple_len", f"F.conv2d(img, {w}, stride=(1, 1, 1))"), ("conv2d_pad_same_stride", f"F.conv2d(img, {w}, stride=2, padding='same')"),
                 ("conv2d_pad_bad_str", f"F.conv2d(img, {w}, padding='foo')"), ("conv2d_pad_same", f"F.conv2d(img, T(np.ones((4, 3, 2, 2), np.float32)), padding='same')"),
                 ("conv2d_empty_batch", f"F.conv2d(T(np.zeros((0, 3, 5, 5), np.float32)), {w})"),
                 ("conv2d_empty_weight", f"F.conv2d(img, T(np.zeros((0, 3, 3, 3), np.float32)))"),
                 ("conv2d_zero_spatial_w", f"F.conv2d(img, T(np.zeros((4, 3, 0, 3), np.float32)))"),
                 ("conv1d_kernel_big", "F.conv1d(T(np.ones((1, 2, 3), np.float32)), T(np.ones((1, 2, 5), np.float32)))"),
                 ("conv1d_stride0", "F.conv1d(T(np.ones((1, 2, 3), np.float32)), T(np.ones((1, 2, 2), np.float32)), stride=0)"),
                 ("conv3d_kernel_big", "F.conv3d(T(np.ones((1, 1, 2, 2, 2), np.float32)), T(np.ones((1, 1, 3, 3, 3), np.float32)))"),
                 ("conv_transpose2d_outpad_big", f"F.conv_transpose2d(img, T(np.ones((3, 2, 3, 3), np.float32)), stride=2, output_padding=2)"),
                 ("conv_transpose2d_stride0", f"F.conv_transpose2d(img, T(np.ones((3, 2, 3, 3), np.float32)), stride=0)"),
                 ("conv_transpose2d_pad_neg", f"F.conv_transpose2d(img, T(np.ones((3, 2, 3, 3), np.float32)), padding=-1)"),
                 ("conv_transpose2d_pad_big", f"F.conv_transpose2d(img, T(np.ones((3, 2, 3, 3), np.float32)), padding=10)"),
                 ("conv_transpose2d_chan", f"F.conv_transpose2d(img, T(np.ones((2, 2, 3, 3), np.float32)))"),
                 ("conv_transpose1d_groups", "F.conv_transpose1d(T(np.ones((1, 3, 4), np.float32)), T(np.ones((3, 1, 2), np.float32)), groups=2)"),
                 ("unfold_kernel_big", "F.unfold(img, 7)"), ("unfold_stride0", "F.unfold(img, 2, stride=0)"), ("unfold_pad_neg", "F.unfold(img, 2, padding=-1)"),
                 ("unfold_3d", "F.unfold(img[0, 0], 2)"), ("unfold_dil0", "F.unfold(img, 2, dilation=0)"),
                 ("fold_bad_L", "F.fold(T(np.ones((1, 12, 5), np.float32)), (4, 4), 2)"), ("fold_bad_C", "F.fold(T(np.ones((1, 11, 9), np.float32)), (4, 4), 2)"),
                 ("fold_stride0", "F.fold(T(np.ones((1, 12, 9), np.float32)), (4, 4), 2, stride=0)"),
                 ("fold_kernel_big", "F.fold(T(np.ones((1, 12, 9), np.float32)), (2, 2), 3)"),
                 ("max_pool2d_kernel_big", "F.max_pool2d(img, 7)"), ("max_pool2d_stride0", "F.max_pool2d(img, 2, stride=0)"),
                 ("max_pool2d_stride_neg", "F.max_pool2d(img, 2, stride=-1)"), ("max_pool2d_pad_big", "F.max_pool2d(img, 2, padding=2)"),
                 ("max_pool2d_pad_neg", "F.max_pool2d(img, 2, padding=-1)"), ("max_pool2d_kernel0", "F.max_pool2d(img, 0)"),
                 ("max_pool2d_dil0", "F.max_pool2d(img, 2, dilation=0)"), ("max_pool2d_int", "F.max_pool2d(T(np.ones((1, 1, 4, 4), np.int64)), 2)"),
                 ("max_pool2d_ceil", "F.max_pool2d(img, 2, ceil_mode=True)"), ("max_pool2d_ceil_pad", "F.max_pool2d(img, 3, stride=2, padding=1, ceil_mode=True)"),
                 ("max_pool2d_nan", "F.max_pool2d(f32([[[[1.0, float('nan')], [0.0, 2.0]]]]), 2)"),
                 ("max_pool2d_indices_nan", "F.max_pool2d(f32([[[[1.0, float('nan')], [0.0, 2.0]]]]), 2, return_indices=True)[1]"),
                 ("max_pool2d_2d_input", "F.max_pool2d(x, 2)"), ("max_pool2d_1d_input", "F.max_pool2d(v, 2)"),
                 ("max_pool2d_empty", "F.max_pool2d(T(np.zeros((0, 3, 4, 4), np.float32)), 2)"),
                 ("max_pool2d_zero_chan", "F.max_pool2d(T(np.zeros((1, 0, 4, 4), np.float32)), 2)"),
                 ("max_pool1d_kernel_big", "F.max_pool1d(T(np.ones((1, 2, 3), np.float32)), 5)"),
                 ("max_pool3d_kernel_big", "F.max_pool3d(T(np.ones((1, 1, 2, 2, 2), np.float32)), 3)"),
                 ("avg_pool2d_kernel_big", "F.avg_pool2d(img, 7)"), ("avg_pool2d_stride0", "F.avg_pool2d(img, 2, stride=0)"),
                 ("avg_pool2d_pad_big", "F.avg_pool2d(img, 2, padding=2)"), ("avg_pool2d_divisor0", "F.avg_pool2d(img, 2, divisor_override=0)"),
                 ("avg_pool2d_int", "F.avg_pool2d(T(np.ones((1, 1, 4, 4), np.int64)), 2)"), ("avg_pool2d_ceil_pad", "F.avg_pool2d(img, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)"),
                 ("avg_pool1d_kernel_big", "F.avg_pool1d(T(np.ones((1, 2, 3), np.float32)), 5)"),
                 ("adaptive_avg_neg", "F.adaptive_avg_pool2d(img, -1)"), ("adaptive_avg_zero", "F.adaptive_avg_pool2d(img, 0)"),
                 ("adaptive_avg_bigger", "F.adaptive_avg_pool2d(img, 7)"), ("adaptive_avg_none", "F.adaptive_avg_pool2d(img, (None, 2))"),
                 ("adaptive_avg_len", "F.adaptive_avg_pool2d(img, (1, 2, 3))"), ("adaptive_max_neg", "F.adaptive_max_pool2d(img, -2)"),
                 ("adaptive_max_bigger", "F.adaptive_max_pool2d(img, 8, return_indices=True)"), ("adaptive_avg_empty", "F.adaptive_avg_pool2d(T(np.zeros((1, 3, 0, 4), np.float32)), 2)"),
                 ("adaptive_max_int", "F.adaptive_max_pool2d(T(np.ones((1, 1, 4, 4), np.int64)), 2)"),
                 ("lp_pool2d_kernel_big", "F.lp_pool2d(img, 2, 7)"), ("lp_pool2d_neg_norm", "F.lp_pool2d(img, -1, 2)"),
                 ("lp_pool1d_zero_norm", "F.lp_pool1d(T(np.ones((1, 2, 4), np.float32)), 0, 2)"),
                 ("max_unpool2d_oob", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), i64([[[[0, 1], [2, 99]]]]), 2)"),
                 ("max_unpool2d_neg", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), i64([[[[0, 1], [2, -1]]]]), 2)"),
                 ("max_unpool2d_float_idx", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), f32([[[[0, 1], [2, 3]]]]), 2)"),
                 ("max_unpool2d_int32_idx", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), i32([[[[0, 1], [2, 3]]]]), 2)"),
                 ("max_unpool2d_idx_shape", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), i64([[[[0, 1]]]]), 2)"),
                 ("max_unpool2d_outsize_bad", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), i64([[[[0, 1], [2, 3]]]]), 2, output_size=(10, 10))"),
                 ("max_unpool2d_outsize_small", "F.max_unpool2d(T(np.ones((1, 1, 2, 2), np.float32)), i64([[[[0, 1], [2, 3]]]]), 2, output_size=(3, 3))"),
                 ("max_unpool1d_oob", "F.max_unpool1d(T(np.ones((1, 1, 2), np.float32)), i64([[[0, 4]]]), 2)"),
                 ("max_unpool3d_oob", "F.max_unpool3d(T(np.ones((1, 1, 1, 1, 1), np.float32)), i64([[[[[8]]]]]), 2)"),
                 ("pixel_shuffle_bad", "F.pixel_shuffle(img, 2)"), ("pixel_shuffle_zero", "F.pixel_shuffle(img, 0)"), ("pixel_shuffle_neg", "F.pixel_shuffle(T(np.ones((1, 4, 2, 2), np.float32)), -2)"),
                 ("pixel_unshuffle_bad", "F.pixel_unshuffle(img, 2)"), ("pixel_unshuffle_zero", "F.pixel_unshuffle(img, 0)"),
                 ("pixel_shuffle_2d", "F.pixel_shuffle(x, 1)"), ("channel_shuffle_bad", "F.channel_shuffle(img, 2)"), ("channel_shuffle_zero", "F.channel_shuffle(img, 0)"),
                 ("interpolate_neg_size", "F.interpolate(img, size=-1)"), ("interpolate_zero_size", "F.interpolate(img, size=0)"),
                 ("interpolate_neg_scale", "F.interpolate(img, scale_factor=-1.0)"), ("interpolate_both", "F.interpolate(img, size=3, scale_factor=2.0)"),
                 ("interpolate_none", "F.interpolate(img)"), ("interpolate_badmode", "F.interpolate(img, size=3, mode='foo')"),
                 ("interpolate_bilinear_3d", "F.interpolate(img[0], size=3, mode='bilinear')"), ("interpolate_size_len", "F.interpolate(img, size=(3, 3, 3))"),
                 ("interpolate_int", "F.interpolate(T(np.ones((1, 1, 4, 4), np.int64)), size=2, mode='bilinear')"),
                 ("interpolate_nearest_int", "F.interpolate(T(np.arange(16, dtype=np.int64).reshape(1, 1, 4, 4)), size=3)"),
                 ("interpolate_align_nearest", "F.interpolate(img, size=3, align_corners=True)"),
                 ("interpolate_tiny_scale", "F.interpolate(img, scale_factor=0.01)"),
                 ("hardtanh_rev", "F.hardtanh(x, 2.0, 1.0)"), ("hardtanh_int", "F.hardtanh(xi)"), ("threshold_int", "F.threshold(xi, 2.5, 1)"),
                 ("celu_alpha0", "F.celu(x, 0.0)"), ("prelu_shape", "F.prelu(x, f32([1.0, 2.0]))"), ("prelu_0d_input", "F.prelu(s, f32([0.5]))"),
                 ("prelu_weight_2d", "F.prelu(x, T(np.ones((3, 4), np.float32)))"),
                 ("rrelu_rev", "F.rrelu(x, 0.5, 0.1, training=True)"), ("glu_odd", "F.glu(T(np.ones((2, 3), np.float32)))"), ("glu_0d", "F.glu(s)"),
                 ("glu_baddim", "F.glu(x, 2)"), ("softmin_int", "F.softmin(xi, 0)"), ("gumbel_baddim", "F.gumbel_softmax(x, dim=2)"),
                 ("gumbel_tau0", "F.gumbel_softmax(x, tau=0.0).isnan().any() if False else None"),
                 ("cosine_sim_shape", "F.cosine_similarity(x, T(np.ones((2, 4), np.float32)))"), ("cosine_sim_baddim", "F.cosine_similarity(x, x, dim=2)"),
                 ("pairwise_shape", "F.pairwise_distance(x, T(np.ones((2, 4), np.float32)))"), ("pdist_3d", "F.pdist(T(np.ones((2, 2, 2), np.float32)))"),
                 ("pdist_neg_p", "F.pdist(x, -1)"), ("pdist_1row", "F.pdist(x[:1])"),
                 ("triplet_shape", "F.triplet_margin_loss(x, x, v)"), ("margin_ranking_shape", "F.margin_ranking_loss(v, v, x)"),
                 ("embedding_oob", "F.embedding(i64([0, 5]), x)"), ("embedding_neg", "F.embedding(i64([-1]), x)"), ("embedding_float", "F.embedding(f32([0.0]), x)"),
                 ("embedding_int32", "F.embedding(i32([0, 2]), x)"), ("embedding_padidx_oob", "F.embedding(i64([0]), x, padding_idx=5)"),
                 ("embedding_padidx_neg", "F.embedding(i64([0, 2]), x, padding_idx=-1)"),
                 ("embedding_1d_weight", "F.embedding(i64([0]), v)"),
                 ("one_hot_oob", "F.one_hot(i64([0, 5]), 3)"), ("one_hot_neg", "F.one_hot(i64([-1]), 3)"), ("one_hot_float", "F.one_hot(f32([0.0]), 3)"),
                 ("one_hot_int32", "F.one_hot(i32([0, 1]), 3)"), ("one_hot_empty_auto", "F.one_hot(T(np.zeros((0,), np.int64)))"),
                 ("nll_oob", "F.nll_loss(x, i64([0, 1, 4]))"), ("nll_neg", "F.nll_loss(x, i64([0, 1, -1]))"), ("nll_float_tgt", "F.nll_loss(x, f32([0, 1, 2]))"),
                 ("nll_int32_tgt", "F.nll_loss(x, i32([0, 1, 2]))"), ("nll_shape", "F.nll_loss(x, i64([0, 1]))"), ("nll_ignore_oob", "F.nll_loss(x, i64([0, 1, -100]))"),
                 ("ce_oob", "F.cross_entropy(x, i64([0, 1, 4]))"), ("ce_neg", "F.cross_entropy(x, i64([0, -2, 1]))"), ("ce_weight_shape", "F.cross_entropy(x, i64([0, 1, 2]), weight=f32([1.0, 1.0]))"),
                 ("ce_ls_bad", "F.cross_entropy(x, i64([0, 1, 2]), label_smoothing=1.5)"),
                 ("multi_margin_oob", "F.multi_margin_loss(x, i64([0, 1, 4]))"), ("multi_margin_neg", "F.multi_margin_loss(x, i64([0, 1, -1]))"),
                 ("multilabel_margin_oob", "F.multilabel_margin_loss(x, i64([[0, 5, -1, 0]] * 3))"),
                 ("ctc_bad", "F.ctc_loss(T(np.zeros((5, 2, 4), np.float32)), i64([[1, 2], [1, 9]]), i64([5, 5]), i64([2, 2]))"),
                 ("ctc_len_oob", "F.ctc_loss(T(np.zeros((5, 2, 4), np.float32)), i64([[1, 2], [1, 2]]), i64([9, 5]), i64([2, 2]))"),
                 ("gaussian_nll_neg_var", "F.gaussian_nll_loss(v, v, f32([-1.0] * 5))"), ("poisson_nll_shape", "F.poisson_nll_loss(x, v)"),
                 ("kl_div_shape", "F.kl_div(x, T(np.ones((2, 4), np.float32)))"), ("bce_out_of_range", "F.binary_cross_entropy(f32([1.5]), f32([1.0]))"),
                 ("bce_target_shape", "F.binary_cross_entropy(f32([0.5, 0.5]), f32([1.0]))"),
                 ("grid_sample_bad", "F.grid_sample(img, T(np.zeros((2, 3, 3, 3), np.float32)), align_corners=False)"),
                 ("affine_grid_bad", "F.affine_grid(T(np.zeros((2, 3, 3), np.float32)), (2, 3, 4, 4), align_corners=False)"),
                 ("pad_reflect_big", "F.pad(img, (5, 5), mode='reflect')"), ("pad_replicate_neg", "F.pad(img, (-1, -1), mode='replicate')"),
                 ("pad_circular_big", "F.pad(img, (6, 6), mode='circular')"), ("pad_odd", "F.pad(img, (1,))"), ("pad_badmode", "F.pad(img, (1, 1), mode='foo')"),
                 ("pad_reflect_empty", "F.pad(T(np.zeros((1, 1, 0), np.float32)), (1, 1), mode='reflect')"),
                 ("local_response_norm_2d", "F.local_response_norm(x, 2)"), ("local_response_norm_size0", "F.local_response_norm(img, 0)"),
                 ("normalize_p0", "F.normalize(x, p=0)"), ("normalize_baddim", "F.normalize(x, dim=2)"),
                 ("group_norm_bad", "F.group_norm(img, 2)"), ("group_norm_0", "F.group_norm(img, 0)"),
                 ("instance_norm_1pix", "F.instance_norm(T(np.ones((1, 2, 1), np.float32)))"),
                 ("batch_norm_1val", "F.batch_norm(T(np.ones((1, 2), np.float32)), None, None, training=True)"),
                 ("layer_norm_shape", "F.layer_norm(x, (3,))"), ("dropout_p_bad", "F.dropout(x, 1.5)"), ("dropout_p_neg", "F.dropout(x, -0.5)"),
                 ("alpha_dropout_bad", "F.alpha_dropout(x, 2.0, training=True)"), ("dropout2d_p1", "F.dropout2d(img, 1.0)"),
                 ("softmax_baddim", "F.softmax(x, 2)"), ("log_softmax_int", "F.log_softmax(xi, 0)")]:
    c(nm, f"M.manual_seed(0); r = {code}")

# ---------------- vmap
for nm, code in [("vmap_size_mismatch", "M.vmap(lambda a, b: a + b)(x, v)"), ("vmap_bad_in_dim", "M.vmap(lambda a: a * 2, in_dims=2)(x)"),
                 ("vmap_neg_in_dim", "M.vmap(lambda a: a * 2, in_dims=-3)(x)"), ("vmap_0d", "M.vmap(lambda a: a * 2)(s)"),
                 ("vmap_in_dims_len", "M.vmap(lambda a, b: a + b, in_dims=(0,))(x, x)"), ("vmap_bad_out_dim", "M.vmap(lambda a: a * 2, out_dims=3)(x)"),
                 ("vmap_no_batched", "M.vmap(lambda a: a * 2, in_dims=None)(x)"), ("vmap_empty_batch", "M.vmap(lambda a: a * 2)(T(np.zeros((0, 3), np.float32)))"),
                 ("vmap_item", "M.vmap(lambda a: a.sum().item())(x)"), ("vmap_random_error", "M.vmap(lambda a: a + M.rand(4))(x)"),
                 ("vmap_gather_oob", "M.vmap(lambda a, i: M.gather(a, 0, i))(x, i64([[0], [4], [1]]))"),
                 ("vmap_index_select_oob", "M.vmap(lambda a, i: M.index_select(a, 0, i))(x, i64([[0], [4], [1]]))"),
                 ("vmap_take_oob", "M.vmap(lambda a, i: M.take(a, i))(x, i64([[0], [4], [1]]))"),
                 ("vmap_scatter_add_oob", "M.vmap(lambda a, i: M.scatter_add(a, 0, i, a[:1]))(x, i64([[0], [4], [1]]))"),
                 ("vmap_index_oob", "M.vmap(lambda a, i: a[i])(x, i64([0, 4, 1]))"),
                 ("vmap_index_neg", "M.vmap(lambda a, i: a[i])(x, i64([0, -1, 1]))"),
                 ("vmap_index_put_oob", "M.vmap(lambda a, i: M.index_put(a, (i,), f32(1.0)))(x, i64([0, 4, 1]))"),
                 ("vmap_index_add_oob", "M.vmap(lambda a, i: M.index_add(a, 0, i, a[:1]))(x, i64([[0], [4], [1]]))"),
                 ("vmap_nll_oob", "M.vmap(lambda a, t: F.nll_loss(a, t))(T(np.ones((2, 3, 4), np.float32)), i64([[0, 1, 2], [0, 1, 9]]))"),
                 ("vmap_ce_oob", "M.vmap(lambda a, t: F.cross_entropy(a, t))(T(np.ones((2, 3, 4), np.float32)), i64([[0, 1, 2], [0, 1, 9]]))"),
                 ("vmap_embedding_oob", "M.vmap(lambda i: F.embedding(i, x))(i64([[0], [5]]))"),
                 ("vmap_inplace_unbatched", "y = x[0].clone(); M.vmap(lambda a: y.add_(a))(x)"),
                 ("vmap_out_not_tensor", "M.vmap(lambda a: 3)(x)"), ("vmap_chunk0", "M.vmap(lambda a: a * 2, chunk_size=0)(x)"),
                 ("vmap_random_bad", "M.vmap(lambda a: a, randomness='foo')(x)")]:
    c(nm, f"r = {code}")
CASES = C

# ---------------- batch 2
for nm, code in [("getitem_oob", "x[3]"), ("getitem_neg_oob", "x[-4]"), ("getitem_tensor_oob", "x[i64([0, 3])]"), ("getitem_tensor_neg", "x[i64([-1])]"),
                 ("getitem_int32", "x[i32([0, 2])]"), ("getitem_float", "x[f32([0.0])]"), ("getitem_bool_shape", "x[bo([True, False])]"),
                 ("getitem_2tensor_oob", "x[i64([0]), i64([4])]"), ("getitem_0d_idx", "x[i64(2)]"), ("getitem_0d_oob", "s[0]"),
                 ("setitem_oob", "y = x.clone(); y[i64([3])] = 1.0; r = y"), ("setitem_neg_oob", "y = x.clone(); y[i64([-4])] = 1.0; r = y"),
                 ("setitem_shape", "y = x.clone(); y[0] = f32([1.0, 2.0]); r = y"),
                 ("meth_gather_oob", "x.gather(1, i64([[5]]))"), ("meth_scatter__neg", "x.clone().scatter_(0, i64([[-1]]), 1.0)"),
                 ("meth_index_select_oob", "x.index_select(0, i64([3]))"), ("meth_take_oob", "x.take(i64([12]))"),
                 ("meth_index_put__oob", "x.clone().index_put_((i64([3]),), f32([1.0]))"), ("meth_masked_fill_shape", "x.masked_fill(bo([True, False]), 1.0)"),
                 ("repeat_huge", "x.repeat(2**31, 2**31)"), ("expand_huge", "x.expand(2**62, 3, 4).sum()"),
                 ("tile_huge", "M.tile(x, (2**40, 2**40))"), ("ri_huge_output", "M.repeat_interleave(v, 2**62)"),
                 ("zeros_huge", "M.zeros(2**62)"), ("arange_huge", "M.arange(0, 2**62)"),
                 ("flip_dupdim", "M.flip(x, (0, 0))"), ("flip_baddim", "M.flip(x, (2,))"), ("roll_huge_shift", "M.roll(x, 2**62, 1)"),
                 ("roll_neg_huge", "M.roll(x, -2**62 - 3, 0)"),
                 ("permute_dup", "x.permute(0, 0)"), ("permute_len", "x.permute(0,)"),
                 ("cumsum_baddim", "M.cumsum(x, 2)"), ("cat_dtype", "M.cat([x, x64])"), ("cat_shape", "M.cat([x, v])"), ("cat_empty_list", "M.cat([])"),
                 ("stack_shape", "M.stack([x, x[:2]])"), ("cat_legacy_empty", "M.cat([x, e])"),
                 ("nonzero_static_fill", "M.nonzero_static(f32([0.0, 1.0]), size=4, fill_value=-5)"),
                 ("unique_dim_empty", "M.unique(T(np.zeros((0, 3), np.float32)), dim=0)"),
                 ("unique_consec_dim1", "M.unique_consecutive(i64([[1, 1, 2], [1, 1, 3]]), dim=1, return_inverse=True, return_counts=True)"),
                 ("bincount_neg", "M.bincount(i64([0, -1]))"), ("bincount_float", "M.bincount(f32([0.0]))"), ("bincount_weights_len", "M.bincount(i64([0, 1]), f32([1.0]))"),
                 ("histc_bad", "M.histc(x, bins=-1)"), ("histc_minmax", "M.histc(x, bins=4, min=5, max=1)"),
                 ("tril_indices_huge", "M.tril_indices(2**20, 2**20)"),
                 ("searchsorted_sorter_2d", "M.searchsorted(x, f32([[2.0]] * 3), sorter=i64([[0, 1, 2, 7]] * 3))"),
                 ("searchsorted_sorter_shape", "M.searchsorted(x, f32([[2.0]] * 3), sorter=i64([0, 1, 2, 3]))"),
                 ("bucketize_int32_out", "M.bucketize(f32([2.0, 9.0]), f32([1.0, 3.0]), out_int32=True)"),
                 ("index_put_bool_and_int", "M.index_put(x, (bo([True, False, True]), i64([0, 9])), f32([1.0]))"),
                 ("index_put_vals_dtype_int", "M.index_put(xi, (i64([0]),), f32([1.5]))"),
                 ("scatter_src_smaller", "M.scatter(x, 1, i64([[0, 1, 2]]), f32([[1.0]]))"),
                 ("scatter_add_src_smaller", "M.scatter_add(x, 1, i64([[0, 1, 2]]), f32([[1.0]]))"),
                 ("gather_idx_larger_other_dim", "M.gather(x, 1, i64([[0]] * 5))"),
                 ("take_along_dim_bcast", "M.take_along_dim(x, i64([[0]]), 1)"),
                 ("index_reduce_badname", "M.index_reduce(x, 0, i64([0]), f32([[1.0] * 4]), 'max')"),
                 ("diag_embed_0d", "M.diag_embed(s)"), ("kron_0d", "M.kron(s, x)"),
                 ("einsum_ellipsis_bad", "M.einsum('...ij,...jk', x, T(np.ones((2, 4, 2), np.float32)))"),
                 ("einsum_broadcast_bad", "M.einsum('i,i->', v, f32([1.0, 2.0]))"),
                 ("block_diag_0d", "M.block_diag(s, x)"), ("cartesian_0d", "M.cartesian_prod(s)"),
                 ("unfold_meth_bad_step", "x.unfold(1, 2, 0)"), ("unfold_meth_big", "x.unfold(1, 5, 1)"), ("unfold_meth_neg", "x.unfold(1, -1, 1)"),
                 ("movedim_neg_oob", "M.movedim(x, -3, 0)"), ("narrow_huge_len", "M.narrow(x, 0, 0, 2**62)"),
                 ("topk_k_float", "M.topk(v, 1.5)"), ("kthvalue_k_float", "M.kthvalue(v, 1.5)"),
                 ("quantile_big_q_count", "M.quantile(v, T(np.linspace(0, 1, 5).astype(np.float32)))"),
                 ("multinomial_2d_zero_row", "M.multinomial(f32([[0.5, 0.5], [0.0, 0.0]]), 1)"),
                 ("normal_both_float_no_size", "M.normal(0.0, 1.0)"),
                 ("randint_high_only_neg", "M.randint(-1, (2,))"), ("randint_float_bounds", "M.randint(0.5, 3.5, (2,))"),
                 ("pdist_empty", "F.pdist(T(np.zeros((0, 3), np.float32)))"),
                 ("cosine_sim_0d", "F.cosine_similarity(s, s, dim=0)"),
                 ("one_hot_small_classes", "F.one_hot(i64([0, 3]), 2)"), ("one_hot_neg1_auto_empty", "F.one_hot(i64([0, 3]), -1)"),
                 ("embedding_maxnorm_oob", "F.embedding(i64([0, 9]), x.clone(), max_norm=1.0)"),
                 ("avg_pool2d_neg_pad", "F.avg_pool2d(img, 2, padding=-1)"), ("max_pool2d_ceil_edge", "F.max_pool2d(T(np.ones((1, 1, 5, 5), np.float32)), 2, stride=2, padding=1, ceil_mode=True)"),
                 ("max_pool1d_neg_stride", "F.max_pool1d(T(np.ones((1, 1, 5), np.float32)), 2, stride=-1)"),
                 ("conv1d_neg_pad", "F.conv1d(T(np.ones((1, 2, 3), np.float32)), T(np.ones((1, 2, 2), np.float32)), padding=-1)"),
                 ("conv_transpose1d_outpad_neg", "F.conv_transpose1d(T(np.ones((1, 2, 3), np.float32)), T(np.ones((2, 1, 2), np.float32)), output_padding=-1)"),
                 ("conv_transpose1d_dil0", "F.conv_transpose1d(T(np.ones((1, 2, 3), np.float32)), T(np.ones((2, 1, 2), np.float32)), dilation=0)"),
                 ("fold_pad_neg", "F.fold(T(np.ones((1, 12, 9), np.float32)), (4, 4), 2, padding=-1)"),
                 ("fold_2d_input", "F.fold(T(np.ones((12, 9), np.float32)), (4, 4), 2)"),
                 ("fold_outsize_len", "F.fold(T(np.ones((1, 12, 9), np.float32)), (4, 4, 4), 2)"),
                 ("unfold_2d_unbatched", "F.unfold(img[0], 2)"),
                 ("adaptive_max1d_zero", "F.adaptive_max_pool1d(T(np.ones((1, 2, 4), np.float32)), 0)"),
                 ("interpolate_scale_len", "F.interpolate(img, scale_factor=(2.0, 2.0, 2.0))"),
                 ("interpolate_linear_4d", "F.interpolate(img, size=3, mode='linear')"),
                 ("interpolate_bicubic", "F.interpolate(img, size=3, mode='bicubic')"),
                 ("interpolate_area_neg", "F.interpolate(img, size=-2, mode='area')"),
                 ("pixel_shuffle_1d", "F.pixel_shuffle(v, 1)"), ("pixel_unshuffle_indivisible", "F.pixel_unshuffle(T(np.ones((1, 1, 5, 4), np.float32)), 2)"),
                 ("vmap_nll_ignore_ok", "M.vmap(lambda a, t: F.nll_loss(a, t))(T(np.ones((2, 3, 4), np.float32)), i64([[0, 1, 2], [0, -100, 3]]))"),
                 ("vmap_cross_entropy_ls_oob", "M.vmap(lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1))(T(np.ones((2, 3, 4), np.float32)), i64([[0, 1, 2], [0, 1, 4]]))")]:
    C.append((nm, P + f"M.manual_seed(0); r = {code}"))
CASES = C
