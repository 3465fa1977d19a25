//! `#[derive(IsRateLimit)]`: the attributes are read into a validated [`Model`] (one
//! [`Verdict`] per variant) before any code is generated, and every mistake points at
//! the attribute, field or keyword that caused it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Member, Path, Type};

/// The options `#[rate_limit(…)]` takes.
const KEYS: &str = "`final`, `transparent` or `crate = \"…\"`";

/// What the derive generates: for each arm, the verdict of `fn rate_limit`.
struct Model {
    input: DeriveInput,
    krate: Path,
    arms: Vec<Arm>,
}

/// A variant (or the struct itself) and what it says about rate limiting.
struct Arm {
    /// `Self::Variant`, or `Self` for a struct.
    path: TokenStream,
    verdict: Verdict,
}

enum Verdict {
    /// No `#[rate_limit]`: never a rate limit.
    Never,
    /// `#[rate_limit]`: a rate limit worth waiting out, for as long as the
    /// `#[retry_after]` field says, if there is one.
    Retry { retry_after: Option<Field> },
    /// `#[rate_limit(final)]`: a rate limit that waiting cannot cure.
    Final,
    /// `#[rate_limit(transparent)]`: whatever the one field's error says.
    Transparent(Field),
}

/// A field the generated code reads: how to name it in a pattern, and its type (the
/// span of the trait call made on it, so a wrong type is reported there).
struct Field {
    member: Member,
    ty: Type,
}

/// The `#[rate_limit]` attribute as written, before it is checked against the fields.
struct Marker {
    /// The whole attribute, where a misplaced one is reported.
    tokens: TokenStream,
    kind: MarkerKind,
    krate: Option<Path>,
}

enum MarkerKind {
    Retry,
    Final,
    /// With the span of the `transparent` key, where a wrong field count is reported.
    Transparent(Span),
}

/// Entry point: on any error, the errors plus an impl whose body panics, so the
/// user's uses of the trait do not add errors of their own (no cascade).
pub(crate) fn is_rate_limit(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(e) => return e.into_compile_error(),
    };
    match Model::from_input(input.clone()) {
        Ok(model) => model.expand(),
        Err(e) => {
            let fallback = Model {
                krate: default_crate(),
                arms: Vec::new(),
                input,
            };
            let mut out = e.into_compile_error();
            out.extend(fallback.impl_block(quote!(::core::unimplemented!(
                "`#[derive(IsRateLimit)]` failed"
            ))));
            out
        }
    }
}

fn default_crate() -> Path {
    syn::parse_quote!(::ratellmiter)
}

/// Collects errors, so one build shows them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

impl Model {
    fn from_input(input: DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let container = marker(&input.attrs, &mut errors);
        let mut krate = None;
        let arms = match &input.data {
            Data::Union(u) => {
                return Err(syn::Error::new(
                    u.union_token.span,
                    "`IsRateLimit` cannot be derived for a union: the derive cannot tell which field holds the error; use an enum, or implement `fn rate_limit(&self)` by hand",
                ));
            }
            Data::Struct(s) => {
                let verdict = match container {
                    Some(m) => {
                        krate = m.krate.clone();
                        verdict(m, &s.fields, &mut errors)
                    }
                    None => {
                        errors.push(syn::Error::new(
                            input.ident.span(),
                            "a struct deriving `IsRateLimit` needs `#[rate_limit]` (always a rate limit), `#[rate_limit(final)]` (always a spent quota) or `#[rate_limit(transparent)]` (the error of its one field decides)",
                        ));
                        Verdict::Never
                    }
                };
                check_retry_after_fields(&s.fields, &verdict, &mut errors);
                vec![Arm {
                    path: quote!(Self),
                    verdict,
                }]
            }
            Data::Enum(e) => {
                if let Some(m) = container {
                    match (m.kind, m.krate) {
                        (MarkerKind::Retry, Some(path)) => krate = Some(path),
                        _ => errors.push(syn::Error::new_spanned(
                            &m.tokens,
                            "on an enum, `#[rate_limit(…)]` takes only `crate = \"…\"`: mark the variants that are rate limits with `#[rate_limit]`, `#[rate_limit(final)]` or `#[rate_limit(transparent)]`",
                        )),
                    }
                }
                e.variants
                    .iter()
                    .map(|v| {
                        let verdict = match marker(&v.attrs, &mut errors) {
                            Some(m) => {
                                if let Some(path) = &m.krate {
                                    errors.push(syn::Error::new_spanned(
                                        path,
                                        "`crate = \"…\"` goes on the enum, not on a variant",
                                    ));
                                }
                                verdict(m, &v.fields, &mut errors)
                            }
                            None => Verdict::Never,
                        };
                        check_retry_after_fields(&v.fields, &verdict, &mut errors);
                        let ident = &v.ident;
                        Arm {
                            path: quote!(Self::#ident),
                            verdict,
                        }
                    })
                    .collect()
            }
        };
        let model = Model {
            krate: krate.unwrap_or_else(default_crate),
            arms,
            input,
        };
        errors.finish(model)
    }

    fn expand(&self) -> TokenStream {
        let krate = &self.krate;
        let body = if self.arms.is_empty() {
            // An empty enum has no value to classify.
            quote!(match *self {})
        } else {
            let arms = self.arms.iter().map(|arm| arm.expand(krate));
            quote!(match self { #(#arms)* })
        };
        self.impl_block(body)
    }

    fn impl_block(&self, body: TokenStream) -> TokenStream {
        let krate = &self.krate;
        let ident = &self.input.ident;
        let mut generics = self.input.generics.clone();
        // A field forwarded to whose type names a type parameter must itself be an
        // `IsRateLimit` (only those: a bound on `Box<Self>` would never be proven).
        let params: Vec<Ident> = generics.type_params().map(|p| p.ident.clone()).collect();
        let bounds: Vec<&Type> = self
            .arms
            .iter()
            .filter_map(|arm| match &arm.verdict {
                Verdict::Transparent(field) if mentions(&field.ty, &params) => Some(&field.ty),
                _ => None,
            })
            .collect();
        if !bounds.is_empty() {
            let clause = generics.make_where_clause();
            for ty in bounds {
                clause
                    .predicates
                    .push(syn::parse_quote!(#ty: #krate::__private::IsRateLimit));
            }
        }
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::__private::IsRateLimit for #ident #ty_generics #where_clause {
                fn rate_limit(&self) -> ::core::option::Option<#krate::__private::RateLimit> {
                    #body
                }
            }
        }
    }
}

impl Arm {
    fn expand(&self, krate: &Path) -> TokenStream {
        let path = &self.path;
        let field = Ident::new("__rate_limit_field", Span::mixed_site());
        match &self.verdict {
            Verdict::Never => quote!(#path { .. } => ::core::option::Option::None,),
            Verdict::Final => quote! {
                #path { .. } => ::core::option::Option::Some(#krate::__private::RateLimit::final_quota()),
            },
            Verdict::Retry { retry_after: None } => quote! {
                #path { .. } => ::core::option::Option::Some(#krate::__private::RateLimit::retry(::core::option::Option::None)),
            },
            Verdict::Retry {
                retry_after: Some(Field { member, ty }),
            } => {
                let wait = quote_spanned!(ty.span()=> <#ty as #krate::__private::RetryAfter>::retry_after(#field));
                quote! {
                    #path { #member: #field, .. } => ::core::option::Option::Some(#krate::__private::RateLimit::retry(#wait)),
                }
            }
            Verdict::Transparent(Field { member, ty }) => {
                let forward = quote_spanned!(ty.span()=> <#ty as #krate::__private::IsRateLimit>::rate_limit(#field));
                quote!(#path { #member: #field, .. } => #forward,)
            }
        }
    }
}

/// Whether `ty` names one of `params`.
fn mentions(ty: &Type, params: &[Ident]) -> bool {
    fn walk(tokens: TokenStream, params: &[Ident]) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(id) => params.contains(&id),
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), params),
            _ => false,
        })
    }
    walk(quote!(#ty), params)
}

/// Reads the `#[rate_limit]` attribute among `attrs`, if there is one.
fn marker(attrs: &[Attribute], errors: &mut Errors) -> Option<Marker> {
    let mut found: Option<Marker> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("rate_limit")) {
        if found.is_some() {
            errors.push(syn::Error::new_spanned(
                attr,
                "a second `#[rate_limit]`: give one, with its options together (`#[rate_limit(transparent, crate = \"…\")]`)",
            ));
            continue;
        }
        match parse_marker(attr) {
            Ok(m) => found = Some(m),
            Err(e) => errors.push(e),
        }
    }
    found
}

fn parse_marker(attr: &Attribute) -> syn::Result<Marker> {
    let mut marker = Marker {
        tokens: quote!(#attr),
        kind: MarkerKind::Retry,
        krate: None,
    };
    match &attr.meta {
        syn::Meta::Path(_) => return Ok(marker),
        syn::Meta::NameValue(nv) => {
            return Err(syn::Error::new_spanned(
                nv,
                format!("write `#[rate_limit]`, or `#[rate_limit(…)]` with {KEYS}"),
            ));
        }
        syn::Meta::List(_) => {}
    }
    let mut kind_key: Option<Ident> = None;
    attr.parse_nested_meta(|meta| {
        let key = meta.path.get_ident().cloned().ok_or_else(|| {
            meta.error(format!(
                "unknown `rate_limit` option: expected {KEYS}"
            ))
        })?;
        let kind = match key.to_string().as_str() {
            "final" => MarkerKind::Final,
            "transparent" => MarkerKind::Transparent(key.span()),
            "crate" => {
                if marker.krate.is_some() {
                    return Err(meta.error("`crate` given twice"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                marker.krate = Some(lit.parse()?);
                return Ok(());
            }
            _ => {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown `rate_limit` option `{key}`: expected {KEYS}"),
                ));
            }
        };
        if let Some(first) = &kind_key {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "`{first}` and `{key}` cannot go together: a variant is a rate limit worth waiting out (`#[rate_limit]`), a final one (`final`), or forwards to its field (`transparent`)"
                ),
            ));
        }
        kind_key = Some(key);
        marker.kind = kind;
        Ok(())
    })?;
    Ok(marker)
}

/// The verdict a marker gives, checked against the fields it applies to.
fn verdict(marker: Marker, fields: &Fields, errors: &mut Errors) -> Verdict {
    match marker.kind {
        MarkerKind::Final => Verdict::Final,
        MarkerKind::Retry => Verdict::Retry {
            retry_after: retry_after_fields(fields).next().map(|(_, f)| f),
        },
        MarkerKind::Transparent(span) => {
            let mut all = fields_of(fields);
            match (all.next(), all.next()) {
                (Some(field), None) => Verdict::Transparent(field),
                _ => {
                    errors.push(syn::Error::new(
                        span,
                        format!(
                            "`transparent` forwards to the error in the one field, but this has {}",
                            match fields.len() {
                                0 => "no field".to_owned(),
                                n => format!("{n} fields"),
                            }
                        ),
                    ));
                    Verdict::Never
                }
            }
        }
    }
}

/// `#[retry_after]` fields: at most one, of a plain `#[rate_limit]`, written bare.
fn check_retry_after_fields(fields: &Fields, verdict: &Verdict, errors: &mut Errors) {
    for (i, (attr, _)) in retry_after_fields(fields).enumerate() {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.push(syn::Error::new_spanned(
                attr,
                "write `#[retry_after]`, without arguments",
            ));
        } else if !matches!(verdict, Verdict::Retry { .. }) {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[retry_after]` belongs to a variant marked `#[rate_limit]`: a final rate limit has no wait, a transparent one takes its error's, and an unmarked variant is no rate limit",
            ));
        } else if i > 0 {
            errors.push(syn::Error::new_spanned(
                attr,
                "a second `#[retry_after]` field: a rate limit has one wait",
            ));
        }
    }
}

fn retry_after_fields(fields: &Fields) -> impl Iterator<Item = (&Attribute, Field)> {
    fields
        .iter()
        .zip(fields_of(fields))
        .filter_map(|(f, field)| {
            let attr = f.attrs.iter().find(|a| a.path().is_ident("retry_after"))?;
            Some((attr, field))
        })
}

fn fields_of(fields: &Fields) -> impl Iterator<Item = Field> + '_ {
    fields.iter().enumerate().map(|(i, f)| Field {
        member: match &f.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(syn::Index {
                index: i as u32,
                span: f.ty.span(),
            }),
        },
        ty: f.ty.clone(),
    })
}
