output "id" {
  description = "Distribution ID (publish --cloudfront-distribution)."
  value       = aws_cloudfront_distribution.this.id
}

output "arn" {
  description = "Distribution ARN."
  value       = aws_cloudfront_distribution.this.arn
}

output "domain_name" {
  description = "The distribution's *.cloudfront.net domain name."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "registry_url" {
  description = "URL of the registry: the first alias, else the cloudfront.net domain, plus the registry prefix."
  value       = "https://${length(var.aliases) > 0 ? var.aliases[0] : aws_cloudfront_distribution.this.domain_name}${var.registry_prefix == "" ? "" : "/${var.registry_prefix}"}"
}
