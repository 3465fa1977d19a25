//! The rewrite. The signature stays exactly as written; only the body changes, into one
//! call of the runtime's retry loop (`Call::run`, `Call::run_with`, `Call::run_blocking`)
//! whose closure builds each attempt from the original body.

use std::collections::HashSet;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Block, Expr, FnArg, GenericArgument, Ident, Item, ItemFn, Pat, PathArguments, ReturnType,
    Signature, Stmt, Type, TypeParamBound,
};

use crate::args::{self, Config, MaxRetries, Priority, Source, Timeout};

/// The hidden name the body's `self` takes when each attempt needs its own receiver.
const SELF_NAME: &str = "__llmiter_self";

/// Entry point: on any error, the item unchanged plus the error, so the rest of the
/// crate still type-checks against the user's function (no cascade of errors).
pub(crate) fn llmiter(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => return with_error(item.clone(), not_a_function(item)),
    };
    match args::parse(args) {
        Ok(config) => match rewrite(&config, func.clone()) {
            Ok(rewritten) => rewritten.into_token_stream(),
            Err(e) => with_error(func.into_token_stream(), e),
        },
        Err(e) => with_error(func.into_token_stream(), e),
    }
}

fn with_error(mut item: TokenStream, e: syn::Error) -> TokenStream {
    item.extend(e.into_compile_error());
    item
}

/// Says what the item is instead, at its span.
fn not_a_function(item: TokenStream) -> syn::Error {
    let (span, what) = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(s)) => (s.ident.span(), "a struct"),
        Ok(Item::Enum(e)) => (e.ident.span(), "an enum"),
        Ok(Item::Impl(i)) => (i.impl_token.span, "an `impl` block (put it on each method)"),
        Ok(Item::Trait(t)) => (
            t.ident.span(),
            "a trait (put it on the methods of the `impl`)",
        ),
        Ok(Item::Mod(m)) => (m.ident.span(), "a module"),
        Ok(Item::Const(c)) => (c.ident.span(), "a constant"),
        Ok(Item::Static(s)) => (s.ident.span(), "a static"),
        Ok(Item::Type(t)) => (t.ident.span(), "a type alias"),
        _ => match syn::parse2::<syn::TraitItemFn>(item.clone()) {
            Ok(f) => (
                f.sig.ident.span(),
                "a function without a body (put it on the method in the `impl`)",
            ),
            Err(_) => (item.span(), "this item"),
        },
    };
    syn::Error::new(
        span,
        format!("`#[llmiter]` goes on a function (`async fn` or `fn`) with a body, not on {what}"),
    )
}

/// What an argument needs so each attempt can have its own.
enum Param {
    /// `&T`, `&self`, or a pattern binding nothing: shared by every attempt as is.
    Shared,
    /// `&mut T`, `&mut self`, `Pin<&mut T>` or `self: Pin<&mut Self>`: handed to each
    /// attempt and back (`Call::run_with`), reborrowed for the attempt as the [`Lend`]
    /// says.
    Exclusive(Binding, Lend),
    /// Owned: each binding is cloned for each attempt.
    Owned(Vec<Binding>),
}

/// How an attempt reborrows an exclusive argument.
#[derive(Clone, Copy)]
enum Lend {
    /// `&mut *arg`.
    Ref,
    /// `arg.as_mut()`: a `Pin<&mut T>` stays pinned.
    Pin,
}

/// One name an argument binds (`self` included), with its `mut`.
struct Binding {
    ident: Ident,
    mutable: bool,
}

impl Binding {
    fn is_self(&self) -> bool {
        self.ident == "self"
    }

    /// The name the attempt's body uses: `self` becomes [`SELF_NAME`].
    fn inner(&self) -> Ident {
        if self.is_self() {
            Ident::new(SELF_NAME, self.ident.span())
        } else {
            self.ident.clone()
        }
    }

    fn mutability(&self) -> Option<syn::Token![mut]> {
        self.mutable.then(|| syn::Token![mut](self.ident.span()))
    }
}

/// How the body runs.
enum Shape {
    /// `async fn`: the body is awaited inside the loop.
    Async,
    /// A `fn` whose body ends in one future, rewritten inside it: `async move {…}` (returning
    /// `impl Future`, the usual way to promise `Send` in a trait), `Box::pin(async {…})`
    /// (as `#[async_trait]` writes it) or `async {…}.boxed()`.
    Future,
    /// Plain `fn`: `run_blocking`.
    Blocking,
}

fn rewrite(config: &Config, mut func: ItemFn) -> syn::Result<ItemFn> {
    let shape = if func.sig.asyncness.is_some() {
        Shape::Async
    } else if inner_future(&mut func.block).is_some() {
        Shape::Future
    } else {
        Shape::Blocking
    };
    check_shape(&func.sig, &shape)?;
    let ret_span = return_span(&func.sig, &shape);
    let mut params: Vec<Param> = func.sig.inputs.iter().map(param).collect();
    let is_async = !matches!(shape, Shape::Blocking);
    if let Shape::Future = shape {
        // The locals bound before the future are owned by it like the arguments: each
        // attempt gets its own copy.
        let (_, before) = func.block.stmts.split_last().expect("ends in a future");
        for stmt in before {
            if let Stmt::Local(local) = stmt {
                let mut bindings = Vec::new();
                bindings_of(&local.pat, &mut bindings);
                params.push(Param::Owned(bindings));
            }
        }
    }
    let block = match inner_future(&mut func.block) {
        Some(inner) if matches!(shape, Shape::Future) => {
            // A future returned by a `fn` cannot borrow the function's arguments or
            // locals, so a block without `move` could only capture them by value
            // anyway: `move` changes nothing it captured, and lets the attempts (and the
            // limiter's expression) take what they use.
            inner.capture.get_or_insert_with(Default::default);
            &mut inner.block
        }
        _ => &mut *func.block,
    };
    let body = std::mem::replace(block, syn::parse_quote!({}));
    let call = call(config, &params, body, is_async, ret_span);
    *block = syn::parse_quote!({ #call });
    Ok(func)
}

/// Refuses what the rewrite cannot do right, naming the shape and the way out.
fn check_shape(sig: &Signature, shape: &Shape) -> syn::Result<()> {
    if let (Shape::Blocking, ReturnType::Type(_, ty)) = (shape, &sig.output)
        && future_output(ty).is_some()
    {
        return Err(syn::Error::new_spanned(
            ty,
            "`#[llmiter]` on a `fn` returning a future needs a body that ends in an \
             `async` block: `async move { … }`, `Box::pin(async move { … })` or \
             `async move { … }.boxed()` (the block is what waits for tickets and is re-run); \
             or write an `async fn`",
        ));
    }
    Ok(())
}

/// `&mut T` (lent as `&mut *arg`) or `Pin<&mut T>` (lent as `arg.as_mut()`).
fn exclusive(ty: &Type) -> Option<Lend> {
    match ty {
        Type::Reference(rf) if rf.mutability.is_some() => Some(Lend::Ref),
        ty if is_pin_mut(ty) => Some(Lend::Pin),
        _ => None,
    }
}

/// `Pin<&mut T>`, however the path to `Pin` is written.
fn is_pin_mut(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(a) = &last.arguments else {
        return false;
    };
    last.ident == "Pin"
        && matches!(
            a.args.first(),
            Some(GenericArgument::Type(Type::Reference(r))) if r.mutability.is_some()
        )
}

/// The `async {…}` of a body that ends in one future: `async {…}`,
/// `Box::pin(async {…})` or `async {…}.boxed()` (`boxed_local()`), `move` or not
/// (tracing's `#[instrument]` recognises `#[async_trait]`'s output the same way). The
/// statements before it run once, when the function is called; the future's body is
/// what waits for tickets and is re-run.
fn inner_future(block: &mut Block) -> Option<&mut syn::ExprAsync> {
    let Some(Stmt::Expr(tail, None)) = block.stmts.last_mut() else {
        return None;
    };
    let inner = match tail {
        Expr::Call(call) if call.args.len() == 1 && is_box_pin(&call.func) => &mut call.args[0],
        Expr::MethodCall(m)
            if m.args.is_empty() && (m.method == "boxed" || m.method == "boxed_local") =>
        {
            &mut *m.receiver
        }
        Expr::Async(a) => return Some(a),
        _ => return None,
    };
    match inner {
        Expr::Async(a) => Some(a),
        _ => None,
    }
}

/// `Box::pin`, however the path to it is written.
fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(path) = func else { return false };
    let names: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    names.ends_with(&["Box".to_owned(), "pin".to_owned()])
}

/// Where type errors about the call's outcome point: the return type as written (for a
/// body that is a future, the future's `Output`), or the name when there is none.
fn return_span(sig: &Signature, shape: &Shape) -> Span {
    let ReturnType::Type(_, ty) = &sig.output else {
        return sig.ident.span();
    };
    if let Shape::Future = shape
        && let Some(output) = future_output(ty)
    {
        return output.span();
    }
    ty.span()
}

/// `R` in `impl Future<Output = R>`, `Pin<Box<dyn Future<Output = R> + Send + 'a>>`
/// or `BoxFuture<'a, R>`.
fn future_output(ty: &Type) -> Option<&Type> {
    let bounds = match ty {
        Type::ImplTrait(t) => &t.bounds,
        Type::TraitObject(t) => &t.bounds,
        Type::Paren(p) => return future_output(&p.elem),
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let PathArguments::AngleBracketed(a) = &last.arguments else {
                return None;
            };
            let mut types = a.args.iter().filter_map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            });
            return match last.ident.to_string().as_str() {
                "BoxFuture" | "LocalBoxFuture" => types.next(),
                "Pin" | "Box" => types.next().and_then(future_output),
                _ => None,
            };
        }
        _ => return None,
    };
    bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let PathArguments::AngleBracketed(a) = &t.path.segments.last()?.arguments else {
            return None;
        };
        a.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

fn param(arg: &FnArg) -> Param {
    match arg {
        FnArg::Receiver(r) => {
            let binding = Binding {
                ident: Ident::new("self", r.self_token.span),
                // In `&mut self` the `mut` belongs to the reference, not the binding.
                mutable: r.reference.is_none() && r.mutability.is_some(),
            };
            match (exclusive(&r.ty), &*r.ty) {
                (Some(lend), _) => Param::Exclusive(binding, lend),
                (None, Type::Reference(_)) => Param::Shared,
                (None, _) => Param::Owned(vec![binding]),
            }
        }
        FnArg::Typed(typed) => match (exclusive(&typed.ty), &*typed.ty, &*typed.pat) {
            (Some(lend), _, Pat::Ident(p)) if p.subpat.is_none() => {
                let binding = Binding {
                    ident: p.ident.clone(),
                    mutable: p.mutability.is_some(),
                };
                Param::Exclusive(binding, lend)
            }
            (_, Type::Reference(_), _) => Param::Shared,
            (_, _, pat) => {
                let mut bindings = Vec::new();
                bindings_of(pat, &mut bindings);
                if bindings.is_empty() {
                    Param::Shared
                } else {
                    Param::Owned(bindings)
                }
            }
        },
    }
}

/// The by-value names a pattern binds (`ref` bindings borrow the argument, which every
/// attempt can share).
fn bindings_of(pat: &Pat, out: &mut Vec<Binding>) {
    match pat {
        Pat::Ident(p) => {
            if p.by_ref.is_none() {
                out.push(Binding {
                    ident: p.ident.clone(),
                    mutable: p.mutability.is_some(),
                });
            }
            if let Some((_, sub)) = &p.subpat {
                bindings_of(sub, out);
            }
        }
        Pat::Tuple(t) => t.elems.iter().for_each(|p| bindings_of(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| bindings_of(p, out)),
        Pat::Slice(s) => s.elems.iter().for_each(|p| bindings_of(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| bindings_of(&f.pat, out)),
        Pat::Paren(p) => bindings_of(&p.pat, out),
        Pat::Type(t) => bindings_of(&t.pat, out),
        Pat::Reference(r) => bindings_of(&r.pat, out),
        // Every alternative binds the same names.
        Pat::Or(o) => {
            if let Some(first) = o.cases.first() {
                bindings_of(first, out);
            }
        }
        _ => {}
    }
}

/// A local of the expansion, at `span` for errors but resolved at the macro's own
/// (mixed-site) hygiene: the body can neither name it nor be shadowed by it.
fn hidden(name: &str, span: Span) -> Ident {
    Ident::new(name, span.resolved_at(Span::mixed_site()))
}

/// The new body: pick the limiter, set the call's options, run the attempts.
fn call(config: &Config, params: &[Param], body: Block, is_async: bool, ret: Span) -> TokenStream {
    let krate = &config.krate;
    let p = quote!(#krate::__private);
    let monitor = match &config.monitor {
        // Deref coercion takes a `Monitor`, a `&Monitor`, an `Arc` or a `LazyLock` of one.
        Some(e) => {
            let m = hidden("__llmiter_monitor", e.span());
            quote_spanned!(e.span()=> { let #m: &#p::Monitor = &(#e); #m })
        }
        None => quote!(#p::monitor()),
    };
    let limiter = match &config.source {
        Source::Default => quote!(#monitor.default_limiter()),
        Source::Named(name) => quote!(#monitor.limiter(#name)),
        Source::NamedBy(e) => quote_spanned!(e.span()=> #monitor.limiter(#p::as_str(&(#e)))),
        Source::Limiter(e) => quote_spanned!(e.span()=> #p::AsLimiter::to_limiter(&(#e))),
    };
    let mut options = TokenStream::new();
    match &config.max_retries {
        Some(MaxRetries::Literal(n)) => options.extend(quote!(.max_retries(#n))),
        Some(MaxRetries::Expr(e)) => options.extend(quote_spanned!(e.span()=> .max_retries(#e))),
        None => {}
    }
    if let Some(priority) = config.priority {
        let level = match priority {
            Priority::High => quote!(High),
            Priority::Normal => quote!(Normal),
        };
        options.extend(quote!(.priority(#p::Priority::#level)));
    }
    if let Some(e) = &config.request_id {
        options.extend(quote_spanned!(e.span()=> .request_id(#p::as_str(&(#e)))));
    }
    match &config.timeout {
        Some(Timeout::Literal(ms, span)) => {
            options.extend(quote_spanned!(*span=> .timeout(#p::Duration::from_millis(#ms))));
        }
        Some(Timeout::Expr(e)) => options.extend(quote_spanned!(e.span()=> .timeout(#e))),
        None => {}
    }
    if let Some(e) = &config.tokens {
        options.extend(quote_spanned!(e.span()=> .tokens(#e)));
    }
    if let Some(e) = &config.input_tokens {
        options.extend(quote_spanned!(e.span()=> .input_tokens(#e)));
    }
    if let Some(e) = &config.output_tokens {
        options.extend(quote_spanned!(e.span()=> .output_tokens(#e)));
    }
    if !config.can_fail() {
        // It cannot return an `AcquireError`: a spent daily quota is waited for.
        options.extend(quote!(.wait_for_quota()));
    }

    let attempts = if config.runs_once() {
        once(&p, body, is_async, ret)
    } else {
        retried(&p, params, body, is_async, ret)
    };
    let outcome = if config.can_fail() {
        // Spanned at the return type, where a missing `From<AcquireError>` is to be fixed.
        let failed = respan(quote!(#p::acquire_failed), ret);
        let (out, err) = (hidden("__llmiter_out", ret), hidden("__llmiter_err", ret));
        let failed = quote_spanned!(ret=> #failed(#err));
        quote! {
            match #attempts {
                ::core::result::Result::Ok(#out) => #out,
                ::core::result::Result::Err(#err) => #failed,
            }
        }
    } else {
        quote!(#p::always_issued(#attempts))
    };
    let limiter_local = hidden("__llmiter_limiter", Span::call_site());
    let call = hidden("__llmiter_call", ret);
    quote! {
        let #limiter_local = #limiter;
        let #call = #limiter_local.call() #options;
        #outcome
    }
}

/// `Call::run` (or `run_with`, `run_blocking`) as a path spanned at `ret`, called with
/// the hidden `__llmiter_call` as its first argument: a method call on that mixed-site
/// local would start the expression's span there, so the `CallOutcome` failures of the
/// call and of its `.await` would not coincide and the user would see each twice.
fn run_path(p: &TokenStream, run: &Ident, ret: Span) -> TokenStream {
    respan(quote!(#p::Call::#run), ret)
}

/// `max_retries = 0`: the body runs once, owning its arguments; nothing is cloned.
fn once(p: &TokenStream, body: Block, is_async: bool, ret: Span) -> TokenStream {
    let run = Ident::new(if is_async { "run" } else { "run_blocking" }, ret);
    let call = hidden("__llmiter_call", ret);
    if is_async {
        // As in `retried`: one span for the call and its `.await`, so one error.
        let run = run_path(p, &run, ret);
        quote_spanned!(ret=> #run(#call, #p::once(move || async move #body)).await)
    } else {
        let run = run_path(p, &run, ret);
        quote_spanned!(ret=> #run(#call, #p::once(move || #body)))
    }
}

/// Each attempt clones the owned arguments; `&mut` ones go in and come back.
fn retried(
    p: &TokenStream,
    params: &[Param],
    mut body: Block,
    is_async: bool,
    ret: Span,
) -> TokenStream {
    let mut clones = TokenStream::new();
    // The arguments' own `mut` is used by the copies now; a borrow keeps `unused_mut` quiet.
    let mut keep_mut = TokenStream::new();
    let mut exclusive = Vec::new();
    let mut rename_self = false;
    // An argument the body never names (one only the attribute uses, as in
    // `service = model`) needs no copy, and an unused copy would warn.
    let named = Mentions::of(body.to_token_stream());
    for param in params {
        match param {
            Param::Shared => {}
            Param::Owned(bindings) => {
                for b in bindings.iter().filter(|b| named.contains(&b.ident)) {
                    let (ident, inner, mutability) = (&b.ident, b.inner(), b.mutability());
                    rename_self |= b.is_self();
                    clones.extend(quote_spanned! {ident.span()=>
                        let #mutability #inner = #p::RetryArg::clone_for_attempt(&#ident);
                    });
                    if b.mutable {
                        keep_mut.extend(quote!(let _ = &mut #ident;));
                    }
                }
            }
            Param::Exclusive(b, lend) if is_async => {
                rename_self |= b.is_self();
                if b.mutable {
                    let ident = &b.ident;
                    keep_mut.extend(quote!(let _ = &mut #ident;));
                }
                exclusive.push((b, *lend));
            }
            // A blocking attempt reborrows `&mut` captures itself: closures may lend.
            Param::Exclusive(..) => {}
        }
    }
    if rename_self {
        RenameSelf.visit_block_mut(&mut body);
    }
    // The loop's `R: CallOutcome` bound fails on the call and on its `.await`: the
    // call's own tokens all carry the return type's span (see [`run_path`]), so both
    // failures land on one span, where the fix goes, and the user sees one error.
    let run = |name: &str| run_path(p, &Ident::new(name, ret), ret);
    let call = hidden("__llmiter_call", ret);
    if !is_async {
        let run = run("run_blocking");
        // The body's statements join the copies' block: a nested `{ #body }` would trip
        // `unused_braces` on the user's code.
        let stmts = &body.stmts;
        let call = quote_spanned!(ret=> #run(#call, move || { #clones #(#stmts)* }));
        return quote! {{
            #keep_mut
            #call
        }};
    }
    if exclusive.is_empty() {
        let run = run("run");
        let attempt = quote!({ #clones async move #body });
        let call = quote_spanned!(ret=> #run(#call, move || #attempt).await);
        return quote! {{
            #keep_mut
            #call
        }};
    }
    let outer: Vec<&Ident> = exclusive.iter().map(|(b, _)| &b.ident).collect();
    let state: Vec<Ident> = (0..exclusive.len())
        .map(|i| hidden(&format!("__llmiter_state{i}"), Span::call_site()))
        .collect();
    let reborrows = exclusive.iter().zip(&state).map(|((b, lend), s)| {
        let (inner, mutability) = (b.inner(), b.mutability());
        match lend {
            Lend::Ref => quote!(let #mutability #inner = &mut *#s;),
            Lend::Pin => quote!(let #mutability #inner = #s.as_mut();),
        }
    });
    let run = run("run_with");
    let out = hidden("__llmiter_out", Span::call_site());
    let stmts = &body.stmts;
    let attempt = quote!({
        #clones
        async move {
            let #out = async { #(#reborrows)* #(#stmts)* }.await;
            ((#(#state,)*), #out)
        }
    });
    let lent = quote!((#(#outer,)*));
    // `as_mut()` takes a pinned state by `&mut`.
    let state_mut = exclusive
        .iter()
        .map(|(_, lend)| matches!(lend, Lend::Pin).then(<syn::Token![mut]>::default));
    let states = quote!((#(#state_mut #state,)*));
    let call = quote_spanned!(ret=> #run(#call, #lent, move |#states| #attempt).await);
    quote! {{
        #keep_mut
        #call
    }}
}

/// The names a body mentions: its identifiers, macro arguments included, and the
/// literals where format strings capture names (`"{prompt}"`).
#[derive(Default)]
struct Mentions {
    idents: HashSet<String>,
    literals: Vec<String>,
}

impl Mentions {
    fn of(tokens: TokenStream) -> Self {
        let mut m = Mentions::default();
        m.collect(tokens);
        m
    }

    fn collect(&mut self, tokens: TokenStream) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(id) => {
                    self.idents.insert(id.to_string());
                }
                TokenTree::Literal(lit) => self.literals.push(lit.to_string()),
                TokenTree::Group(g) => self.collect(g.stream()),
                TokenTree::Punct(_) => {}
            }
        }
    }

    fn contains(&self, name: &Ident) -> bool {
        let name = name.to_string();
        self.idents.contains(&name)
            || self
                .literals
                .iter()
                .any(|l| l.contains(&format!("{{{name}}}")) || l.contains(&format!("{{{name}:")))
    }
}

/// `tokens` with every span set to `span`, so an error about them points there.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut g = Group::new(g.delimiter(), respan(g.stream(), span));
                g.set_span(span);
                TokenTree::Group(g)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// Renames the body's `self` to [`SELF_NAME`], the attempt's own receiver, as
/// `#[async_trait]` does (`self` cannot be rebound). Nested items keep their own `self`.
struct RenameSelf;

impl VisitMut for RenameSelf {
    fn visit_expr_path_mut(&mut self, e: &mut syn::ExprPath) {
        if e.qself.is_none()
            && e.path.leading_colon.is_none()
            && e.path.segments.len() == 1
            && e.path.segments[0].ident == "self"
        {
            let span = e.path.segments[0].ident.span();
            e.path.segments[0].ident = Ident::new(SELF_NAME, span);
        }
    }

    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_macro_mut(&mut self, m: &mut syn::Macro) {
        m.tokens = rename_self_tokens(std::mem::take(&mut m.tokens));
    }
}

/// [`RenameSelf`] inside a macro's tokens: every `self` not part of a `self::` or
/// `::self` path.
fn rename_self_tokens(tokens: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let is_colon =
        |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':');
    (0..tokens.len())
        .map(|i| match &tokens[i] {
            TokenTree::Ident(id)
                if id == "self"
                    && !is_colon(tokens.get(i + 1))
                    && !(i > 0 && is_colon(tokens.get(i - 1))) =>
            {
                TokenTree::Ident(Ident::new(SELF_NAME, id.span()))
            }
            TokenTree::Group(g) => {
                let mut renamed = Group::new(g.delimiter(), rename_self_tokens(g.stream()));
                renamed.set_span(g.span());
                TokenTree::Group(renamed)
            }
            other => other.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_in_macro_tokens_is_renamed_but_not_in_paths() {
        let tokens = quote!(format!("{} {}", self.name, self::helper())(self));
        let out = rename_self_tokens(tokens).to_string();
        assert_eq!(
            out,
            quote!(format!("{} {}", __llmiter_self.name, self::helper())(
                __llmiter_self
            ))
            .to_string()
        );
    }
}
